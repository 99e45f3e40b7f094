"""Every periodic task beat is told to send names a task the worker knows."""

import importlib
from importlib.util import find_spec

from django.apps import apps
from django.conf import settings

from portal.celery import app


def test_every_beat_entry_names_a_registered_task():
    for config in apps.get_app_configs():  # what the worker's autodiscovery imports
        if find_spec(f"{config.name}.tasks"):
            importlib.import_module(f"{config.name}.tasks")
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "experiments_app.bulk.tasks.discard_old_bulk_drafts" in scheduled
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)
