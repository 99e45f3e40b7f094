"""The Celery app as the test workers run it: every task they queue goes to their own queue."""

import os

from portal.celery import app

app.conf.task_default_queue = os.environ["TEST_CELERY_QUEUE"]

__all__ = ["app"]
