"""Preview figures, the cap, policy tiers and approvals bound to the id list and the targets."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from experiments_app.bulk import services
from experiments_app.bulk.models import BulkJob, ItemStatus, JobStatus, Kind
from experiments_app.change_requests import (
    change_request_approve,
    change_request_cancel,
    change_request_reject,
    change_requests_expire,
    current_approvals,
    policy_for,
)
from experiments_app.models import Status as RequestStatus
from experiments_app.models import Tier
from tests.bulk.support import ids, include, new_experiment, submit_and_approve

pytestmark = pytest.mark.django_db(transaction=True)


def test_preview_counts_adds_already_there_calls_and_budget_share(eager_tasks, upstream_client, editor):
    experiment = new_experiment(upstream_client)
    include(upstream_client, experiment, "control", ids("u", 40))
    job, preview = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("u", 250), title="",
                                            reason="testers", experiment_id=experiment, variant_key="control")
    figures = job.preview
    assert (figures["ids"], figures["add"], figures["already"], figures["absent"]) == (250, 210, 40, 0)
    assert figures["calls"] == 1 + 3 + 1  # read before writing, 3 adds of <= 100, read back
    assert figures["budget_remaining"] > 0 and 0 < figures["budget_share"] < 1
    assert job.status == JobStatus.DRAFT and job.change_request is None
    assert job.items.filter(status=ItemStatus.PENDING).count() == 210
    assert job.items.filter(status=ItemStatus.SKIPPED, note="already included").count() == 40


def test_a_job_that_would_break_the_2000_cap_is_refused_with_the_numbers(eager_tasks, upstream_client, editor):
    experiment = new_experiment(upstream_client)
    include(upstream_client, experiment, "treatment", ids("held", 1950))
    job, preview = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("new", 60), title="",
                                            reason="too many", experiment_id=experiment, variant_key="treatment")
    assert job is None
    assert preview.refused
    refusal = preview.as_dict()["over_cap"]
    assert refusal == [{"target": f"{preview.targets[0].experiment_key}/treatment", "current": 1950,
                        "adding": 60, "would_hold": 2010}]
    assert not BulkJob.objects.exists()


def test_replace_is_refused_over_the_cap_but_not_when_removals_make_room(eager_tasks, upstream_client, editor):
    experiment = new_experiment(upstream_client)
    include(upstream_client, experiment, "control", ids("held", 1990))
    job, preview = services.bulk_job_create(requester=editor, kind=Kind.REPLACE, ids=ids("new", 2000), title="",
                                            reason="swap cohort", experiment_id=experiment, variant_key="control")
    assert job is not None and job.preview["add"] == 2000 and job.preview["remove"] == 1990
    _, refused = services.bulk_job_create(requester=editor, kind=Kind.REPLACE, ids=ids("new", 2001), title="",
                                          reason="swap cohort", experiment_id=experiment, variant_key="control")
    assert refused.refused and refused.over_cap[0].final == 2001


def test_policy_tiers_small_single_variant_needs_none_large_one_sweep_two(eager_tasks, upstream_client, editor):
    experiment = new_experiment(upstream_client)
    small, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("s", 50), title="", reason="qa",
                                        experiment_id=experiment, variant_key="control")
    large, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("l", 51), title="", reason="qa",
                                        experiment_id=experiment, variant_key="treatment")
    include(upstream_client, experiment, "control", ["gone"])
    sweep, _ = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=["gone"], title="",
                                        reason="erasure", sweep_filter="all")
    small_request = services.bulk_job_submit(actor=editor, job=small)
    large_request = services.bulk_job_submit(actor=editor, job=large)
    sweep_request = services.bulk_job_submit(actor=editor, job=sweep)
    assert (small_request.tier, large_request.tier, sweep_request.tier) == (Tier.BULK_SMALL, Tier.BULK_LARGE,
                                                                            Tier.BULK_SWEEP)
    assert (large_request.required_approvals, sweep_request.required_approvals) == (1, 2)
    small.refresh_from_db()  # no approval needed: it ran at once (tasks run eagerly here)
    assert small.status == JobStatus.SUCCEEDED
    assert sorted(upstream_client.list_inclusions(experiment, "control")) == sorted(["gone"] + ids("s", 50))
    large.refresh_from_db()
    assert large.status == JobStatus.REVIEW and large_request.status == RequestStatus.PENDING


def test_admins_can_change_how_many_approvals_a_tier_needs(eager_tasks, upstream_client, editor):
    policy = policy_for(Tier.BULK_SMALL)
    policy.required_approvals = 1
    policy.save()
    experiment = new_experiment(upstream_client)
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("s", 5), title="", reason="qa",
                                      experiment_id=experiment, variant_key="control")
    assert services.bulk_job_submit(actor=editor, job=job).required_approvals == 1


def test_the_fingerprint_binds_the_id_list_targets_and_kind(eager_tasks, upstream_client, editor):
    experiment = new_experiment(upstream_client)
    make = lambda kind, id_list, variant="control": services.bulk_job_create(  # noqa: E731
        requester=editor, kind=kind, ids=id_list, title="", reason="x", experiment_id=experiment,
        variant_key=variant)[0]
    base = make(Kind.ADD, ["a", "b", "c"])
    assert make(Kind.ADD, ["c", "a", "b"]).fingerprint == base.fingerprint  # order does not matter
    assert make(Kind.ADD, ["a", "b", "d"]).fingerprint != base.fingerprint
    assert make(Kind.ADD, ["a", "b"]).fingerprint != base.fingerprint
    assert make(Kind.ADD, ["a", "b", "c"], "treatment").fingerprint != base.fingerprint
    assert make(Kind.REMOVE, ["a", "b", "c"]).fingerprint != base.fingerprint
    change_request = services.bulk_job_submit(actor=editor, job=base)
    assert change_request.plan == [{"op": "bulk_job", "job": base.pk, "hash": base.fingerprint}]


def test_editing_the_id_list_voids_earlier_approvals(eager_tasks, upstream_client, editor, approver, make_user):
    experiment = new_experiment(upstream_client)
    include(upstream_client, experiment, "control", ids("x", 3))
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=ids("x", 60), title="",
                                      reason="offboarding", sweep_filter="all")
    change_request = services.bulk_job_submit(actor=editor, job=job)
    change_request_approve(approver=approver, change_request=change_request)
    assert current_approvals(change_request).count() == 1
    revised, preview = services.bulk_job_revise(actor=editor, job=job, ids=ids("x", 61), reason="one more")
    assert preview.ids == ids("x", 61) and revised.id_count == 61
    change_request.refresh_from_db()
    assert change_request.plan[0]["hash"] == revised.fingerprint != job.fingerprint
    assert current_approvals(change_request).count() == 0
    assert change_request.status == RequestStatus.PENDING
    with pytest.raises(PermissionDenied):
        services.bulk_job_revise(actor=approver, job=revised, ids=ids("x", 2), reason="not mine")


def test_a_review_that_ends_without_approval_ends_the_job_and_sends_nothing(eager_tasks, upstream_client, editor,
                                                                           approver):
    experiment = new_experiment(upstream_client)

    def in_review(count: int) -> BulkJob:
        job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("r", count), title="",
                                          reason="qa", experiment_id=experiment, variant_key="control")
        services.bulk_job_submit(actor=editor, job=job)
        job.refresh_from_db()
        assert job.status == JobStatus.REVIEW
        return job

    rejected, expired, cancelled = in_review(60), in_review(61), in_review(62)
    change_request_reject(approver=approver, change_request=rejected.change_request, comment="wrong variant")
    expired.change_request.__class__.objects.filter(pk=expired.change_request_id).update(expires_at="2000-01-01T00:00Z")
    assert change_requests_expire() == 1
    change_request_cancel(actor=editor, change_request=cancelled.change_request)  # from the request's own page
    for job, status in ((rejected, JobStatus.REJECTED), (expired, JobStatus.EXPIRED), (cancelled, JobStatus.CANCELLED)):
        job.refresh_from_db()
        assert (job.status, job.is_finished, job.finished_at is not None) == (status, True, True)
        assert set(job.items.values_list("status", flat=True)) == {ItemStatus.PENDING}
        with pytest.raises(ValidationError):
            services.bulk_job_cancel(actor=editor, job=job)
    assert upstream_client.list_inclusions(experiment, "control") == []


def test_drafts_left_unsubmitted_are_discarded_with_their_ledger_and_ids(eager_tasks, upstream_client, editor,
                                                                        client):
    experiment = new_experiment(upstream_client)

    def draft(prefix: str) -> BulkJob:
        job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids(prefix, 70), title="",
                                          reason="qa", experiment_id=experiment, variant_key="control")
        return job

    old, fresh, submitted = draft("old"), draft("fresh"), draft("sub")
    services.bulk_job_submit(actor=editor, job=submitted)
    BulkJob.objects.filter(pk__in=[old.pk, submitted.pk]).update(created_at="2000-01-01T00:00Z")
    assert services.bulk_drafts_discard(max_age_hours=24) == 1
    old.refresh_from_db()
    assert old.status == JobStatus.CANCELLED and old.ids_text == "" and "not submitted within 24 hours" in old.error
    assert not old.items.exists() and not old.targets.exists() and old.id_count == 70
    for job, status in ((fresh, JobStatus.DRAFT), (submitted, JobStatus.REVIEW)):
        job.refresh_from_db()
        assert job.status == status and job.items.count() == 70
    assert services.bulk_drafts_discard(max_age_hours=24) == 0
    client.force_login(editor)
    page = client.get(old.get_absolute_url()).content.decode()
    assert "Discarded: a draft not submitted within 24 hours" in page and "Submit for review" not in page
    fresh_page = client.get(fresh.get_absolute_url()).content.decode()
    assert "Drafts not submitted within 24 hours are discarded." in fresh_page


def test_a_ledger_changed_after_approval_is_refused_and_nothing_is_sent(eager_tasks, upstream_client, editor,
                                                                        approver, settings):
    experiment = new_experiment(upstream_client)
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("ok", 60), title="", reason="qa",
                                      experiment_id=experiment, variant_key="control")
    change_request = services.bulk_job_submit(actor=editor, job=job)
    # Someone edits the stored list behind the review's back, then it gets approved.
    BulkJob.objects.filter(pk=job.pk).update(ids_text="\n".join(ids("ok", 59) + ["intruder"]))
    change_request_approve(approver=approver, change_request=change_request)
    job.refresh_from_db()
    change_request.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no longer match what was approved" in job.error
    assert change_request.status == RequestStatus.FAILED
    assert upstream_client.list_inclusions(experiment, "control") == []


def test_only_editors_create_and_only_the_requester_submits(eager_tasks, upstream_client, editor, viewer, approver):
    experiment = new_experiment(upstream_client)
    with pytest.raises(PermissionDenied):
        services.bulk_job_create(requester=viewer, kind=Kind.ADD, ids=["a"], title="", reason="x",
                                 experiment_id=experiment, variant_key="control")
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=["a"], title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    with pytest.raises(PermissionDenied):
        services.bulk_job_submit(actor=approver, job=job)
    with pytest.raises(ValidationError):
        services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=["a"], title="", reason="  ",
                                 experiment_id=experiment, variant_key="control")


def test_submitting_is_refused_when_todays_budget_cannot_take_the_job(eager_tasks, upstream_client, editor,
                                                                        settings):
    from experiments_app import gateway

    experiment = new_experiment(upstream_client)
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("b", 500), title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    settings.UPSTREAM_DAILY_QUOTA = gateway.get_budget().used_today(settings.UPSTREAM_PROJECT_ID) + 3
    with pytest.raises(ValidationError, match="budget"):
        services.bulk_job_submit(actor=editor, job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.DRAFT


def test_submit_and_approve_helper_runs_a_large_job_eagerly(eager_tasks, upstream_client, editor, approver):
    experiment = new_experiment(upstream_client)
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("e", 120), title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    job = submit_and_approve(job, requester=editor, approvers=[approver])
    assert job.status == JobStatus.SUCCEEDED and job.verified


def test_a_sweep_by_deployment_takes_its_label_and_reaches_only_its_experiments(eager_tasks, upstream_client,
                                                                                 editor):
    deployment = upstream_client.create_deployment(label="ios-app")
    inside, outside = new_experiment(upstream_client), new_experiment(upstream_client)
    upstream_client.add_deployments(inside, [deployment.id])
    for experiment in (inside, outside):
        include(upstream_client, experiment, "control", ["leaver"])
    job, preview = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=["leaver"], title="",
                                            reason="offboarding", sweep_filter="deployment", sweep_value="ios-app")
    assert {t.experiment_id for t in preview.targets} == {inside}
    assert job.preview["remove"] == 1


def test_a_replace_also_removes_ids_pinned_after_its_preview(eager_tasks, upstream_client, editor, approver):
    experiment = new_experiment(upstream_client)
    include(upstream_client, experiment, "control", ["a", "b"])
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.REPLACE, ids=ids("r", 60) + ["a"], title="",
                                      reason="new cohort", experiment_id=experiment, variant_key="control")
    include(upstream_client, experiment, "control", ["late"])
    job = submit_and_approve(job, requester=editor, approvers=[approver])
    assert job.status == JobStatus.SUCCEEDED and job.verified
    assert sorted(upstream_client.list_inclusions(experiment, "control")) == sorted(ids("r", 60) + ["a"])
    late = job.items.get(user_id="late")
    assert (late.action, late.status, late.note) == ("remove", ItemStatus.APPLIED, "appeared since the preview")
