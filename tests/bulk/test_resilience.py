"""A job survives a worker killed mid-way and a flaky upstream, and still ends exactly right."""

from datetime import timedelta

import pytest
from django.utils import timezone

from experiments_app.bulk import services
from experiments_app.bulk.models import BulkJob, ItemStatus, JobStatus, Kind
from experiments_app.models import Status as RequestStatus
from tests.bulk.support import ids, include, new_experiment, submit_and_approve, wait_finished, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _applied(job: BulkJob) -> int:
    return job.items.filter(status=ItemStatus.APPLIED).count()


def test_job_killed_mid_way_completes_after_restart_with_nothing_lost_or_sent_twice(
        bulk_worker_factory, upstream_client, settings, editor, approver):
    client = upstream_client
    experiment = new_experiment(client)
    include(client, experiment, "control", ids("before", 10))
    versions_before = len(client.list_versions(experiment))
    wanted = ids("pin", 1990)
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=wanted, title="", reason="big cohort",
                                      experiment_id=experiment, variant_key="control")
    settings.MANAGEMENT_API_FAULTS = "latency=1:0.08"  # each upstream call takes 80 ms or more
    first = bulk_worker_factory(BULK_STALE_SECONDS=2)
    submit_and_approve(job, requester=editor, approvers=[approver])
    wait_until(lambda: _applied(job) >= 400, timeout=60, what="a few chunks applied")
    first.kill()
    job.refresh_from_db()
    applied_at_kill = _applied(job)
    assert job.status == JobStatus.RUNNING
    assert 400 <= applied_at_kill < len(wanted)

    assert services.bulk_jobs_requeue_stale(stale_seconds=30) == []  # a fresh heartbeat is left alone

    bulk_worker_factory(BULK_STALE_SECONDS=2)
    wait_until(lambda: timezone.now() - job.heartbeat_at > timedelta(seconds=2.1), timeout=10,
               what="the dead worker's heartbeat to go stale")
    assert services.bulk_jobs_requeue_stale(stale_seconds=2) == [job.pk]
    job = wait_finished(job, timeout=90)

    settings.MANAGEMENT_API_FAULTS = ""
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.verified is True
    assert job.change_request.status == RequestStatus.APPLIED
    assert job.items.filter(status=ItemStatus.APPLIED).count() == len(wanted)
    held = client.list_inclusions(experiment, "control")
    assert len(held) == len(set(held)) == 2000
    assert set(held) == set(ids("before", 10)) | set(wanted)
    # Every effective write makes one upstream version: 20 chunks of 100 (the last of 90), and
    # a chunk re-sent after the kill changed nothing, so it made none.
    assert len(client.list_versions(experiment)) - versions_before == 20


def test_jobs_finish_exactly_through_429s_503s_and_dropped_connections(bulk_worker, upstream_client, settings,
                                                                       editor, approver, make_user):
    client = upstream_client
    second_approver = make_user("bea-approver", "Approver")
    experiments = [new_experiment(client, tags=["flaky"]) for _ in range(4)]
    for experiment in experiments:
        include(client, experiment, "control", ids("gone", 3) + ids("stays", 2))
        include(client, experiment, "treatment", ids("gone", 2, start=1))
    target = new_experiment(client)
    include(client, target, "treatment", ids("drop", 150))

    add, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("pin", 350), title="",
                                      reason="flaky add", experiment_id=target, variant_key="control")
    remove, _ = services.bulk_job_create(requester=editor, kind=Kind.REMOVE, ids=ids("drop", 120), title="",
                                         reason="flaky remove", experiment_id=target, variant_key="treatment")
    sweep, _ = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=ids("gone", 3), title="",
                                        reason="flaky sweep", sweep_filter="tag", sweep_value="flaky")
    # From here on a quarter of the upstream calls fail (the previews above ran without faults:
    # a preview under faults just reports the error to the person asking).
    settings.MANAGEMENT_API_FAULTS = "429=0.1:0,503=0.1,drop=0.05,drop_after=0.05"
    for job in (add, remove, sweep):
        submit_and_approve(job, requester=editor, approvers=[approver, second_approver])
    for job in (add, remove, sweep):
        wait_finished(job, timeout=90)
    settings.MANAGEMENT_API_FAULTS = ""

    for job in (add, remove, sweep):
        assert job.status == JobStatus.SUCCEEDED, (job.kind, job.error)
        assert job.verified is True
    assert sorted(client.list_inclusions(target, "control")) == ids("pin", 350)
    assert sorted(client.list_inclusions(target, "treatment")) == ids("drop", 30, start=120)
    for experiment in experiments:
        assert sorted(client.list_inclusions(experiment, "control")) == ids("stays", 2)
        assert client.list_inclusions(experiment, "treatment") == []
