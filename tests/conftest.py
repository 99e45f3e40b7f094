import io
import os
import tempfile
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
    """No test reaches an upstream by accident, nor sees another test's cached reads or budget."""
    from django.core.cache import cache

    run = uuid.uuid4().hex[:12]
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:9"  # the discard port: nothing answers
    settings.UPSTREAM_API_KEY = ""
    settings.UPSTREAM_BUDGET_KEY_PREFIX = f"test:gateway:{run}"
    settings.MANAGEMENT_API_RATE_REDIS_PREFIX = f"test:mapi:{run}:"
    cache.clear()
    yield
    cache.clear()


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
def upstream_client(embedded_upstream):
    """The portal's own gateway client, talking to the embedded API over HTTP (for arranging data)."""
    from experiments_app import gateway

    return gateway.get_client()
