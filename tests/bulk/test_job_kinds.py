"""Each kind of job, run by a real Celery worker against the embedded upstream over HTTP, ends
with the upstream holding exactly the expected ids and the job verified."""

import pytest

from experiments_app.bulk import services
from experiments_app.bulk.models import ItemStatus, JobStatus, Kind
from experiments_app.models import Status as RequestStatus
from tests.bulk.support import ids, include, new_experiment, submit_and_approve, wait_finished

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def second_approver(make_user):
    return make_user("bea-approver", "Approver")


def test_add_remove_replace_and_copy_end_exactly_as_expected(bulk_worker, upstream_client, editor, approver):
    client = upstream_client
    experiment = new_experiment(client)
    other = new_experiment(client)
    include(client, experiment, "control", ids("old", 30))

    add, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("new", 250) + ids("old", 5),
                                      title="", reason="QA testers", experiment_id=experiment, variant_key="control")
    assert add.preview["add"] == 250 and add.preview["already"] == 5
    wait_finished(submit_and_approve(add, requester=editor, approvers=[approver]))
    assert set(client.list_inclusions(experiment, "control")) == set(ids("old", 30) + ids("new", 250))

    remove, _ = services.bulk_job_create(requester=editor, kind=Kind.REMOVE, ids=ids("new", 120) + ["ghost"],
                                         title="", reason="done testing", experiment_id=experiment,
                                         variant_key="control")
    assert remove.preview["remove"] == 120 and remove.preview["absent"] == 1
    wait_finished(submit_and_approve(remove, requester=editor, approvers=[approver]))
    assert set(client.list_inclusions(experiment, "control")) == set(ids("old", 30) + ids("new", 130, start=120))

    replace_with = ids("old", 10) + ids("fresh", 40)
    replace, _ = services.bulk_job_create(requester=editor, kind=Kind.REPLACE, ids=replace_with, title="",
                                          reason="new cohort", experiment_id=experiment, variant_key="control")
    assert replace.preview["add"] == 40 and replace.preview["remove"] == 150 and replace.preview["already"] == 10
    wait_finished(submit_and_approve(replace, requester=editor, approvers=[approver]))
    assert sorted(client.list_inclusions(experiment, "control")) == sorted(replace_with)

    copy, _ = services.bulk_job_create(requester=editor, kind=Kind.COPY, ids=[], title="", reason="same cohort",
                                       experiment_id=other, variant_key="treatment",
                                       source_experiment_id=experiment, source_variant_key="control")
    assert copy.preview["add"] == 50
    wait_finished(submit_and_approve(copy, requester=editor, approvers=[approver]))
    assert sorted(client.list_inclusions(other, "treatment")) == sorted(replace_with)

    for job in (add, remove, replace, copy):
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.kind, job.error)
        assert job.verified is True
        assert not job.items.filter(status=ItemStatus.PENDING).exists()
        assert job.change_request.status == RequestStatus.APPLIED


def test_sweep_removes_ids_from_every_variant_of_matching_experiments(bulk_worker, upstream_client, editor,
                                                                     approver, second_approver):
    client = upstream_client
    leaving = ids("leaver", 3)
    tagged = [new_experiment(client, tags=["checkout"]) for _ in range(3)]
    untagged = new_experiment(client)
    for experiment in tagged + [untagged]:
        include(client, experiment, "control", leaving[:2] + ids("stay", 3))
        include(client, experiment, "treatment", leaving[1:] + ids("keep", 2))

    sweep, preview = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=leaving + ["never-there"],
                                              title="", reason="offboarding", sweep_filter="tag",
                                              sweep_value="checkout")
    assert len(preview.targets) == 6
    assert sweep.preview["remove"] == 12 and sweep.preview["absent"] == 1
    assert sweep.items.count() == 12  # only ids actually present become ledger items
    wait_finished(submit_and_approve(sweep, requester=editor, approvers=[approver, second_approver]))
    sweep.refresh_from_db()
    assert sweep.status == JobStatus.SUCCEEDED and sweep.verified
    for experiment in tagged:
        assert sorted(client.list_inclusions(experiment, "control")) == ids("stay", 3)
        assert sorted(client.list_inclusions(experiment, "treatment")) == ids("keep", 2)
    assert sorted(client.list_inclusions(untagged, "control")) == sorted(leaving[:2] + ids("stay", 3))
