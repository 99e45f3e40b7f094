"""Fixtures for bulk jobs: real Celery workers in subprocesses (which a test can SIGKILL and
replace), sharing the test database (a file on SQLite, see tests/conftest.py) and the broker
with the test process, and talking to the embedded upstream on the live server. Unlike the
suite-wide ``celery_worker``, these workers send the tasks they queue themselves (a bulk job
queued by the change-request apply task) to their own queue too.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER_READY_SECONDS = 30


def _database_url() -> str:
    from django.db import connection

    params = connection.settings_dict
    if params["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{params['NAME']}"
    credentials = params["USER"] or ""
    if params.get("PASSWORD"):
        credentials += f":{params['PASSWORD']}"
    host = f"{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}"
    return f"postgres://{credentials}{'@' if credentials else ''}{host}/{params['NAME']}"


def _route_everything_to(queue: str) -> None:
    from portal.celery import app

    app.conf.task_default_queue = queue
    for cached in ("default_queue", "queues", "router"):
        app.amqp.__dict__.pop(cached, None)


class Worker:
    """A `celery worker` subprocess on its own queue; start(), kill() (SIGKILL), stop()."""

    def __init__(self, queue: str, env: dict):
        self.queue = queue
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="bulk-worker-", suffix=".log")[1])

    def start(self, **extra_env) -> "Worker":
        env = {**self.env, **{k: str(v) for k, v in extra_env.items()}}
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.bulk.worker_app:app", "worker", "--pool", "solo",
             "-Q", self.queue, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
             "-n", f"{self.queue}-{uuid.uuid4().hex[:4]}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited at start:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"the worker did not start within {WORKER_READY_SECONDS}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no ack, no goodbye."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        # The test is over: nothing the worker holds matters any more (the ledger is in the
        # database), so no warm shutdown to wait for.
        self.kill()


@pytest.fixture
def bulk_settings(settings):
    settings.BULK_STALE_SECONDS = 30.0
    settings.BULK_WORKER_THREADS = 4
    settings.BULK_ADD_CHUNK_SIZE = 100
    settings.MANAGEMENT_API_FAULTS = ""
    settings.MANAGEMENT_API_RATE_PER_SECOND = 100
    return settings


@pytest.fixture
def bulk_worker_factory(embedded_upstream, bulk_settings):
    """Make (and afterwards stop) workers that share the test database, broker and upstream;
    every task the test process queues goes to their queue."""
    from portal.celery import app

    queue = f"bulk-test-{uuid.uuid4().hex[:10]}"
    previous_queue = app.conf.task_default_queue
    _route_everything_to(queue)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "UPSTREAM_BASE_URL": bulk_settings.UPSTREAM_BASE_URL,
        "UPSTREAM_API_KEY": bulk_settings.UPSTREAM_API_KEY,
        "UPSTREAM_PROJECT_ID": str(bulk_settings.UPSTREAM_PROJECT_ID),
        "UPSTREAM_MAX_RETRY_SECONDS": "20",
        "BULK_STALE_SECONDS": str(bulk_settings.BULK_STALE_SECONDS),
        "BULK_WORKER_THREADS": str(bulk_settings.BULK_WORKER_THREADS),
        "BULK_ADD_CHUNK_SIZE": str(bulk_settings.BULK_ADD_CHUNK_SIZE),
        "TEST_CELERY_QUEUE": queue,
        "LOG_LEVEL": "INFO",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    workers: list[Worker] = []

    def make(**extra_env) -> Worker:
        worker = Worker(queue, env)
        workers.append(worker)
        return worker.start(**extra_env)

    yield make
    for worker in workers:
        worker.stop()
    _route_everything_to(previous_queue)


@pytest.fixture
def bulk_worker(bulk_worker_factory):
    return bulk_worker_factory()


@pytest.fixture
def eager_tasks(embedded_upstream, bulk_settings, celery_eager):
    """Bulk settings and the embedded upstream, with queued tasks run in the test process."""
