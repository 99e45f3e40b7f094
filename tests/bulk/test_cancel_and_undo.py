"""Cancelling a running job, and undoing exactly what a job applied."""

import pytest

from experiments_app.bulk import services
from experiments_app.bulk.models import ItemStatus, JobStatus, Kind
from experiments_app.models import Status as RequestStatus
from tests.bulk.support import (
    ids,
    include,
    new_experiment,
    submit_and_approve,
    wait_finished,
    wait_previewed,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cancelled_job_stops_and_its_undo_restores_the_variant_exactly(
        bulk_worker, upstream_client, settings, editor, approver):
    client = upstream_client
    experiment = new_experiment(client)
    original = ids("keep", 20) + ids("old", 30)
    include(client, experiment, "control", original)
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("new", 1500) + ids("old", 10),
                                      title="", reason="cohort", experiment_id=experiment, variant_key="control")
    settings.MANAGEMENT_API_FAULTS = "latency=1:0.1"
    submit_and_approve(job, requester=editor, approvers=[approver])
    wait_until(lambda: job.items.filter(status=ItemStatus.APPLIED).count() >= 200, timeout=60,
               what="some chunks applied")
    services.bulk_job_cancel(actor=editor, job=job)
    job = wait_finished(job)
    settings.MANAGEMENT_API_FAULTS = ""

    applied = set(job.items.filter(status=ItemStatus.APPLIED).values_list("user_id", flat=True))
    assert job.status == JobStatus.CANCELLED
    assert job.change_request.status == RequestStatus.FAILED and "Cancelled by eddie-editor" in job.error
    assert 200 <= len(applied) < 1500
    assert job.items.filter(status=ItemStatus.PENDING).exists()
    assert set(client.list_inclusions(experiment, "control")) == set(original) | applied

    undo = services.bulk_job_undo(actor=editor, job=job)
    assert undo.status == JobStatus.PREVIEWING  # the worker reads the variant
    undo = wait_previewed(undo)
    assert undo.kind == Kind.UNDO and undo.undo_of == job and undo.status == JobStatus.DRAFT
    assert set(undo.items.values_list("user_id", flat=True)) == applied
    assert set(undo.items.values_list("action", flat=True)) == {"remove"}
    assert undo.preview["remove"] == len(applied)
    undo = wait_finished(submit_and_approve(undo, requester=editor, approvers=[approver]))
    assert undo.status == JobStatus.SUCCEEDED and undo.verified
    assert sorted(client.list_inclusions(experiment, "control")) == sorted(original)  # "old" ids were never applied


def test_undo_of_a_sweep_puts_back_exactly_the_removed_ids(bulk_worker, upstream_client, editor, approver,
                                                           make_user):
    client = upstream_client
    second = make_user("bea-approver", "Approver")
    experiments = [new_experiment(client, tags=["erase"]) for _ in range(2)]
    for experiment in experiments:
        include(client, experiment, "control", ["p1", "p2", "other"])
        include(client, experiment, "treatment", ["p2"])
    sweep, _ = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=["p1", "p2", "p3"], title="",
                                        reason="erasure", sweep_filter="tag", sweep_value="erase")
    wait_finished(submit_and_approve(sweep, requester=editor, approvers=[approver, second]))
    for experiment in experiments:
        assert client.list_inclusions(experiment, "control") == ["other"]
    undo = wait_previewed(services.bulk_job_undo(actor=editor, job=sweep))
    assert undo.items.count() == 6 and set(undo.items.values_list("action", flat=True)) == {"add"}
    undo = wait_finished(submit_and_approve(undo, requester=editor, approvers=[approver, second]))
    assert undo.status == JobStatus.SUCCEEDED
    for experiment in experiments:
        assert sorted(client.list_inclusions(experiment, "control")) == ["other", "p1", "p2"]
        assert client.list_inclusions(experiment, "treatment") == ["p2"]
