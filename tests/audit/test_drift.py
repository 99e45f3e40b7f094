import io

import pytest
import requests
from django.core.management import call_command

from experiments_app.audit import actions
from experiments_app.audit.models import AuditEntry
from experiments_app.audit.services import audit_chain_verify, audit_drift_detect, audit_outbox_process, audit_record
from experiments_app.audit.tasks import audit_detect_drift


@pytest.fixture
def someone_elses_key(embedded_upstream, settings):
    """A second key, as a colleague scripting against the upstream directly would hold."""
    out = io.StringIO()
    call_command("create_api_key", "grace-script", "--project", settings.UPSTREAM_PROJECT_ID, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def patch_directly(live_server, key: str, experiment_id: str, fields: dict) -> None:
    response = requests.patch(f"{live_server.url}/api/1/experiments/{experiment_id}", json=fields,
                              headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text


def external_changes() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=actions.EXTERNAL_CHANGE).order_by("id"))


def test_a_change_made_directly_against_the_api_is_recorded_as_an_external_change(
        upstream_client, someone_elses_key, embedded_upstream, settings):
    settings.AUDIT_DRIFT_GRACE_SECONDS = 0
    created = upstream_client.create_experiment(key="drift-checkout", name="Checkout")
    first = audit_drift_detect()
    assert (first.baselined, first.external_changes) == (1, 0), "the first run only takes a baseline"

    # The portal's own push, recorded as the lead's apply step will record it.
    before = max(v.version for v in upstream_client.list_versions(created.id))
    upstream_client.update_experiment(created.id, {"rolloutPercentage": 20})
    after = max(v.version for v in upstream_client.list_versions(created.id))
    audit_record(action=actions.CHANGE_REQUEST_APPLIED, actor="ada", experiment_id=created.id,
                 upstream_version_before=before, upstream_version_after=after)
    # Someone else's change, straight at the API.
    patch_directly(embedded_upstream, someone_elses_key, created.id,
                   {"rolloutPercentage": 55, "description": "hotfix from a script"})

    assert audit_detect_drift.apply().get() == 1

    [change] = external_changes()
    assert change.experiment_id == created.id and change.experiment_key == "drift-checkout"
    assert change.actor_label == "upstream:grace-script"
    assert change.detail["createdBy"] == "grace-script"
    assert change.upstream_version_before == after and change.upstream_version_after == after + 1
    assert change.before["rolloutPercentage"] == 20 and change.after["rolloutPercentage"] == 55
    assert change.after["description"] == "hotfix from a script"
    assert "rolloutPercentage" in change.detail["changedFields"]

    assert audit_drift_detect().external_changes == 0, "each upstream version is recorded once"
    audit_outbox_process()
    assert audit_chain_verify().ok


def test_an_experiment_created_elsewhere_after_the_baseline_is_recorded(
        upstream_client, someone_elses_key, embedded_upstream, settings):
    settings.AUDIT_DRIFT_GRACE_SECONDS = 0
    upstream_client.create_experiment(key="drift-existing", name="Existing")
    audit_drift_detect()
    response = requests.post(f"{embedded_upstream.url}/api/1/experiments",
                             json={"projectId": settings.UPSTREAM_PROJECT_ID, "key": "drift-new", "name": "New"},
                             headers={"Authorization": f"Bearer {someone_elses_key}"}, timeout=10)
    assert response.status_code == 200, response.text

    assert audit_drift_detect().external_changes == 1
    [change] = external_changes()
    assert change.experiment_key == "drift-new" and change.upstream_version_before is None
    assert change.after["key"] == "drift-new" and change.before == {}


def test_a_version_younger_than_the_grace_period_waits_for_the_next_run(
        upstream_client, someone_elses_key, embedded_upstream, settings):
    settings.AUDIT_DRIFT_GRACE_SECONDS = 3600
    created = upstream_client.create_experiment(key="drift-young", name="Young")
    audit_drift_detect()
    patch_directly(embedded_upstream, someone_elses_key, created.id, {"rolloutPercentage": 5})

    assert audit_drift_detect().external_changes == 0
    settings.AUDIT_DRIFT_GRACE_SECONDS = 0
    assert audit_drift_detect().external_changes == 1


def test_a_conflict_entry_does_not_hide_the_change_that_caused_it(
        upstream_client, someone_elses_key, embedded_upstream, settings):
    settings.AUDIT_DRIFT_GRACE_SECONDS = 0
    created = upstream_client.create_experiment(key="drift-conflict", name="Conflict")
    audit_drift_detect()
    patch_directly(embedded_upstream, someone_elses_key, created.id, {"description": "changed under a request"})
    version_now = max(v.version for v in upstream_client.list_versions(created.id))
    audit_record(action=actions.CHANGE_REQUEST_CONFLICTED, actor="system:apply", experiment_id=created.id,
                 upstream_version_before=version_now - 1, upstream_version_after=version_now)

    assert audit_drift_detect().external_changes == 1
    assert external_changes()[0].upstream_version_after == version_now


def test_versions_made_with_the_portals_own_key_are_not_external(upstream_client, settings):
    settings.AUDIT_DRIFT_GRACE_SECONDS = 0
    settings.AUDIT_PORTAL_CREATED_BY = ["portal-tests"]  # the embedded_upstream fixture's key name
    settings.AUDIT_DRIFT_SWEEP_SECONDS = 0  # inclusions do not show in the listing: look every run
    created = upstream_client.create_experiment(key="drift-bulk", name="Bulk", variants=[{"key": "on"}])
    audit_drift_detect()
    upstream_client.add_inclusions(created.id, "on", ["user-1", "user-2"])  # a bulk batch: no version recorded

    report = audit_drift_detect()
    assert report.checked == 1 and report.external_changes == 0


def test_unchanged_experiments_cost_no_version_reads_until_the_sweep(
        upstream_client, someone_elses_key, embedded_upstream, settings):
    settings.AUDIT_DRIFT_GRACE_SECONDS = 0
    created = upstream_client.create_experiment(key="drift-quiet", name="Quiet", variants=[{"key": "on"}])
    audit_drift_detect()
    response = requests.post(f"{embedded_upstream.url}/api/1/experiments/{created.id}/variants/on/users",
                             json={"inclusions": ["sneaky-user"]},
                             headers={"Authorization": f"Bearer {someone_elses_key}"}, timeout=10)
    assert response.status_code == 200, response.text

    quiet = audit_drift_detect()
    assert (quiet.experiments, quiet.checked, quiet.external_changes) == (1, 0, 0)
    settings.AUDIT_DRIFT_SWEEP_SECONDS = 0
    sweep = audit_drift_detect()
    assert (sweep.checked, sweep.external_changes) == (1, 1)
    assert external_changes()[0].actor_label == "upstream:grace-script"


def test_the_drift_check_leaves_the_last_requests_of_the_day_to_people(upstream_client, settings):
    settings.AUDIT_DRIFT_BUDGET_RESERVE = 10**9
    upstream_client.create_experiment(key="drift-budget", name="Budget")

    report = audit_drift_detect()

    assert report.stopped_for_budget and report.checked == 0
