import pytest
import requests
from django.core.servers.basehttp import WSGIRequestHandler

from management_api import services
from management_api.auth import api_key_create

PROJECT_ID = "100001"
OTHER_PROJECT_ID = "200002"


@pytest.fixture(autouse=True)
def no_nagle_on_the_live_server(monkeypatch):
    """Django's dev server writes headers and body in separate sends; with Nagle's algorithm
    on, each keep-alive response then waits ~40 ms for the client's delayed ACK."""
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)


@pytest.fixture(autouse=True)
def management_api_settings(settings):
    """Each test starts with rate limits and faults off; tests turn them on as needed."""
    settings.MANAGEMENT_API_RATE_PER_SECOND = 0
    settings.MANAGEMENT_API_RATE_PER_DAY = 0
    settings.MANAGEMENT_API_FAULTS = ""
    settings.MANAGEMENT_API_PUBLIC_URL = "https://experiment.example.test"
    settings.REDIS_URL = None
    return settings


class Api:
    """A real HTTP client for the live server, speaking like the seed's curl examples."""

    def __init__(self, base_url: str, key: str | None):
        self.base_url = base_url.rstrip("/") + "/api/1"
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc_info) -> None:
        self.session.close()

    def request(self, method: str, path: str, json=None, **kwargs) -> requests.Response:
        return self.session.request(method, self.base_url + path, json=json, timeout=15, **kwargs)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json=None, **kwargs):
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json=None, **kwargs):
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, json=None, **kwargs):
        return self.request("DELETE", path, json=json, **kwargs)

    def create_experiment(self, key: str = "exp", **fields) -> str:
        response = self.post("/experiments", {"projectId": PROJECT_ID, "key": key, **fields})
        assert response.status_code == 200, response.text
        return response.json()["id"]


@pytest.fixture
def projects(transactional_db):
    services.project_ensure(project_id=PROJECT_ID, name="Demo project")
    services.project_ensure(project_id=OTHER_PROJECT_ID, name="Other project")
    return PROJECT_ID, OTHER_PROJECT_ID


@pytest.fixture
def api_key(projects):
    _, raw_key = api_key_create(name="alice@example.com", project_ids=[PROJECT_ID])
    return raw_key


@pytest.fixture
def api(live_server, api_key):
    # Closing the session frees the server thread (and its database session) kept alive for it.
    with Api(live_server.url, api_key) as client:
        yield client


@pytest.fixture
def other_api(live_server, projects):
    """A key that reaches only the other project."""
    _, raw_key = api_key_create(name="bob@example.com", project_ids=[OTHER_PROJECT_ID])
    with Api(live_server.url, raw_key) as client:
        yield client


@pytest.fixture
def anonymous_api(live_server, projects):
    with Api(live_server.url, None) as client:
        yield client


@pytest.fixture
def deployment_id(api) -> str:
    response = api.post("/deployments", {"projectId": PROJECT_ID, "label": "web-client", "type": "client"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture
def experiment_id(api) -> str:
    return api.create_experiment("checkout-button-color", name="Checkout button colour")
