"""What every benchmark shares: Django on a throwaway database. Import it first, before any
Django code:

    from _setup import ROOT, TEMP_DIR, throwaway_database

It sets Django up on a SQLite file in a temporary folder -- or, when DATABASE_URL is set, on a
``test_...`` database created beside that one and dropped at the end -- with the portal's var/
(file cache, queued messages) in the same temporary folder, so a benchmark touches nothing of
``make run``'s and sends nothing to a real broker.
"""

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TEMP_DIR = tempfile.TemporaryDirectory(prefix=f"{Path(sys.argv[0]).stem}-bench-")
USE_TEST_DATABASE = bool(os.environ.get("DATABASE_URL"))
if not USE_TEST_DATABASE:
    os.environ["DATABASE_URL"] = f"sqlite:///{TEMP_DIR.name}/bench.sqlite3"
os.environ["PORTAL_VAR_DIR"] = TEMP_DIR.name
os.environ.pop("CELERY_BROKER_URL", None)  # queued messages land in the temporary folder
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["LOG_LEVEL"] = "ERROR"

import django  # noqa: E402

django.setup()


@contextmanager
def throwaway_database(test_name: str = "") -> Iterator[None]:
    """Create and migrate the benchmark's database; drop it (and the temporary folder) after."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if test_name:
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = test_name
    old_config = setup_databases(verbosity=0, interactive=False) if USE_TEST_DATABASE else None
    if old_config is None:
        call_command("migrate", verbosity=0)
    try:
        yield
    finally:
        if old_config is not None:
            if connection.vendor == "postgresql":
                # Server threads may leave sessions open; end them so the database can go.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            teardown_databases(old_config, verbosity=0)
        TEMP_DIR.cleanup()


def median_get_ms(client, url: str, rounds: int, **headers) -> float:
    """Median time of ``rounds`` GETs of ``url`` with a Django test client, after one warm-up
    (which fills the read cache); every answer must be 200."""
    client.get(url, headers=headers)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples) * 1000
