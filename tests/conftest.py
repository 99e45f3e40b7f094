import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command

def pytest_sessionstart(session):
    # The live server answers with Nagle's algorithm off, as `make run` does (see portal.servers).
    from django.test.testcases import LiveServerThread

    from portal.servers import NoDelayThreadedWSGIServer

    LiveServerThread.server_class = NoDelayThreadedWSGIServer


# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run
# beside one unless told that this is deliberate.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a-long-test-password-1"


def pytest_configure(config):
    # Screenshots and traces of failed browser tests go to a temporary folder, not the repo.
    if hasattr(config.option, "output") and config.option.output in (None, "test-results"):
        config.option.output = str(Path(tempfile.gettempdir()) / "experiment-portal-test-results")
    if hasattr(config.option, "screenshot") and config.option.screenshot == "off":
        config.option.screenshot = "only-on-failure"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """SQLite test databases live in a file, so that a real Celery worker (another process) can
    share them; PostgreSQL's test database is shared by nature."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        folder = Path(tempfile.mkdtemp(prefix="portal-test-db-"))
        database.setdefault("TEST", {})["NAME"] = str(folder / "test.sqlite3")


def _database_url(database: dict) -> str:
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    auth = database["USER"] + (f":{database['PASSWORD']}" if database.get("PASSWORD") else "")
    return f"postgres://{auth}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"


@pytest.fixture
def celery_worker(embedded_upstream, settings):
    """A real Celery worker process on a queue of its own, sharing the test database, the broker
    and the embedded upstream with the test."""
    from django.db import connection

    from portal.celery import app

    queue = f"test-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({
        "DATABASE_URL": _database_url(connection.settings_dict),
        "UPSTREAM_BASE_URL": settings.UPSTREAM_BASE_URL,
        "UPSTREAM_API_KEY": settings.UPSTREAM_API_KEY,
        "UPSTREAM_PROJECT_ID": settings.UPSTREAM_PROJECT_ID,
        "PORTAL_VAR_DIR": str(settings.VAR_DIR),
        "LOG_LEVEL": "WARNING",
    })
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "--queues", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=Path(__file__).resolve().parents[1], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()
    output: list[str] = []

    def read():
        for line in process.stdout:
            output.append(line)
            if " ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        process.kill()
        pytest.fail("the Celery worker did not start:\n" + "".join(output[-30:]))
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield process
    app.conf.task_default_queue = previous
    print("--- celery worker output ---\n" + "".join(output[-40:]))  # shown when a test fails
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(condition, *, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    """Polls `condition` until it is truthy (for work that a worker process does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.fixture
def make_user(db):
    from experiments_app.users import user_create

    def make(username: str, role: str):
        return user_create(username=username, role=role, password=PASSWORD,
                           email=f"{username}@example.com", validate=False)

    return make


@pytest.fixture
def viewer(make_user):
    return make_user("vera-viewer", "Viewer")


@pytest.fixture
def editor(make_user):
    return make_user("eddie-editor", "Editor")


@pytest.fixture
def approver(make_user):
    return make_user("ada-approver", "Approver")


@pytest.fixture
def admin_user(make_user):
    return make_user("alan-admin", "Admin")


@pytest.fixture(autouse=True)
def _isolated_upstream(settings):
    """No test reaches an upstream by accident, nor sees another test's cached reads or budget.

    Reads are forgotten by moving to a new cache generation, not by clearing the cache: with
    Redis that would flush a database other processes may be using."""
    from experiments_app.selectors import upstream_cache_clear

    run = uuid.uuid4().hex[:12]
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:9"  # the discard port: nothing answers
    settings.UPSTREAM_API_KEY = ""
    settings.UPSTREAM_BUDGET_KEY_PREFIX = f"test:gateway:{run}"
    settings.MANAGEMENT_API_RATE_REDIS_PREFIX = f"test:mapi:{run}:"
    upstream_cache_clear()
    yield
    upstream_cache_clear()


@pytest.fixture
def embedded_upstream(live_server, settings, transactional_db):
    """Points the portal's gateway at the embedded Management API on the live server."""
    from experiments_app import gateway

    out = io.StringIO()
    call_command("create_api_key", "portal-tests", "--project", settings.UPSTREAM_PROJECT_ID, stdout=out)
    settings.UPSTREAM_BASE_URL = live_server.url
    settings.UPSTREAM_API_KEY = out.getvalue().strip().splitlines()[-1]
    settings.UPSTREAM_MAX_RETRY_SECONDS = 5.0
    gateway.reset_client()
    yield live_server
    gateway.reset_client()


@pytest.fixture
def celery_eager():
    """Queued tasks run in the test process as they are queued (for tests that need no worker;
    the worker itself is exercised by the tests that start one)."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def upstream_client(embedded_upstream):
    """The portal's own gateway client, talking to the embedded API over HTTP (for arranging data)."""
    from experiments_app import gateway

    return gateway.get_client()
