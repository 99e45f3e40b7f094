import pytest
import requests

from management_api.faults import FaultConfigError, parse_faults
from management_api.models import Inclusion, Version


def test_injected_429_carries_retry_after_and_changes_nothing(api, experiment_id, settings):
    settings.MANAGEMENT_API_FAULTS = "429=1:3"
    response = api.patch(f"/experiments/{experiment_id}", {"name": "faulted"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    settings.MANAGEMENT_API_FAULTS = ""
    assert api.get(f"/experiments/{experiment_id}").json()["name"] == "Checkout button colour"


@pytest.mark.parametrize("status", [500, 503])
def test_injected_server_errors_come_before_the_handler(api, experiment_id, settings, status):
    versions = Version.objects.count()
    settings.MANAGEMENT_API_FAULTS = f"{status}=1.0"
    response = api.post(f"/experiments/{experiment_id}/variants/control/users", {"inclusions": ["a"]})
    assert response.status_code == status
    assert not Inclusion.objects.exists()
    assert Version.objects.count() == versions


def test_drop_closes_the_connection_without_applying_the_write(api, experiment_id, settings):
    settings.MANAGEMENT_API_FAULTS = "drop=1"
    with pytest.raises(requests.ConnectionError):
        api.post(f"/experiments/{experiment_id}/variants/control/users", {"inclusions": ["a"]})
    settings.MANAGEMENT_API_FAULTS = ""
    assert api.get(f"/experiments/{experiment_id}/variants/control/users").json() == []


def test_drop_after_applies_the_write_then_closes_the_connection(api, experiment_id, settings):
    settings.MANAGEMENT_API_FAULTS = "drop_after=1"
    with pytest.raises(requests.ConnectionError):
        api.post(f"/experiments/{experiment_id}/variants/control/users", {"inclusions": ["a"]})
    settings.MANAGEMENT_API_FAULTS = ""
    assert api.get(f"/experiments/{experiment_id}/variants/control/users").json() == ["a"]


def test_latency_delays_the_answer(api, experiment_id, settings):
    import time

    settings.MANAGEMENT_API_FAULTS = "latency=1:0.3"
    started = time.monotonic()
    assert api.get(f"/experiments/{experiment_id}").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faults_do_not_bypass_authentication(anonymous_api, settings):
    settings.MANAGEMENT_API_FAULTS = "500=1"
    assert anonymous_api.get("/experiments").status_code == 401


def test_an_invalid_fault_setting_fails_loudly(api, settings):
    settings.MANAGEMENT_API_FAULTS = "429=lots"
    response = api.get("/experiments")
    assert response.status_code == 500
    assert "MANAGEMENT_API_FAULTS" in response.json()["error"]


@pytest.mark.parametrize(
    "text", ["429", "teapot=0.1", "500=1.5", "latency=0.5", "500=0.6,503=0.6", "500=0.1@sometimes", "seed=x"]
)
def test_fault_format_errors_are_explained(text):
    with pytest.raises(FaultConfigError):
        parse_faults(text)


def test_fault_format_parses_every_kind():
    plan = parse_faults("429=0.1:2,503=0.05,500=0.02,latency=0.2:0.05,drop=0.05,drop_after=0.1@write,seed=7")
    assert [f.name for f in plan.outcomes] == ["429", "503", "500", "drop", "drop_after"]
    assert plan.outcomes[-1].scope == "write" and plan.outcomes[0].param == 2
    assert (plan.latency.probability, plan.latency.param) == (0.2, 0.05)
    assert plan.seed == 7
    assert parse_faults("500=0.6@read,503=0.6@write").outcomes[1].scope == "write"


def test_a_write_scoped_fault_leaves_reads_alone(api, experiment_id, settings):
    settings.MANAGEMENT_API_FAULTS = "503=1@write"
    assert api.get(f"/experiments/{experiment_id}").status_code == 200
    assert api.patch(f"/experiments/{experiment_id}", {"name": "x"}).status_code == 503


def test_a_seeded_fault_plan_repeats_the_same_faults(api, experiment_id, settings):
    def statuses():
        settings.MANAGEMENT_API_FAULTS = "503=0.5,seed=42"
        observed = [api.get(f"/experiments/{experiment_id}").status_code for _ in range(12)]
        settings.MANAGEMENT_API_FAULTS = ""
        api.get(f"/experiments/{experiment_id}")  # the server sees the setting change
        return observed

    first = statuses()
    assert set(first) == {200, 503}
    assert statuses() == first
