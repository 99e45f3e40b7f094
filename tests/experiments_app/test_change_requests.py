import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from experiments_app import change_requests as cr
from experiments_app.audit.models import AuditEntry
from experiments_app.models import ChangeRequest, Policy, Status, Tier


pytestmark = pytest.mark.usefixtures("celery_eager")


@pytest.fixture
def running(upstream_client):
    """A running experiment at 10% with a deployment."""
    deployment = upstream_client.create_deployment(label="web-cr", type="client").id
    experiment_id = upstream_client.create_experiment(key="cr-running", name="Running one", deployments=[deployment]).id
    upstream_client.update_experiment(experiment_id, {"enabled": True, "rolloutPercentage": 10})
    return experiment_id


@pytest.fixture
def planning(upstream_client):
    return upstream_client.create_experiment(key="cr-planning", name="Planning one").id


@pytest.fixture
def second_approver(make_user):
    return make_user("bea-approver", "Approver")


def request(user, experiment_id, fields, reason="because"):
    return cr.change_request_create(requester=user, kind="edit_experiment", title="t", reason=reason,
                                    plan=[{"op": "update_experiment", "fields": fields}], experiment_id=experiment_id)


def apply_now(change_request):
    """What the worker does (tests of the real worker are in tests/e2e)."""
    cr.change_request_apply(change_request_id=change_request.pk)
    change_request.refresh_from_db()
    return change_request


@pytest.mark.parametrize(
    ("fields", "tier", "needed"),
    [
        ({"name": "Renamed", "tags": ["a"]}, Tier.METADATA, 0),
        ({"rolloutPercentage": 50}, Tier.STANDARD, 1),
        ({"rolloutPercentage": 61}, Tier.HIGH, 2),
        ({"bucketingSalt": "new-salt"}, Tier.HIGH, 2),
        ({"bucketingKey": "device_id"}, Tier.HIGH, 2),
        ({"enabled": False}, Tier.STANDARD, 1),
    ],
)
def test_policy_tier_of_edits_to_a_running_experiment(editor, running, fields, tier, needed):
    change_request = request(editor, running, fields)
    assert (change_request.tier, change_request.required_approvals) == (tier, needed)


def test_bucketing_change_of_an_experiment_not_running_is_standard(editor, planning):
    assert request(editor, planning, {"bucketingSalt": "s2"}).tier == Tier.STANDARD


def test_removing_a_deployment_or_a_running_variant_is_high_risk(editor, running, upstream_client):
    deployment = upstream_client.get_experiment(running).deployments[0]
    removal = cr.change_request_create(requester=editor, kind="deployments", title="t", reason="r",
                                       plan=[{"op": "remove_deployment", "deployment": deployment}],
                                       experiment_id=running)
    variant = cr.change_request_create(requester=editor, kind="variant", title="t", reason="r",
                                       plan=[{"op": "delete_variant", "key": "treatment"}], experiment_id=running)
    assert removal.tier == variant.tier == Tier.HIGH


def test_metadata_change_needs_no_approval_and_is_applied(editor, running, upstream_client):
    change_request = apply_now(request(editor, running, {"description": "clearer words"}))
    assert change_request.status == Status.APPLIED
    assert change_request.approvals.count() == 0
    assert upstream_client.get_experiment(running).description == "clearer words"
    assert AuditEntry.objects.filter(change_request_id=change_request.pk, action="change_request.applied").exists()


def test_request_records_plan_snapshot_and_hash(editor, running, upstream_client):
    change_request = request(editor, running, {"rolloutPercentage": 50})
    latest = upstream_client.list_versions(running)[0].version
    assert change_request.base_version == latest
    assert change_request.snapshot == {"rolloutPercentage": 10}
    assert len(change_request.plan_hash) == 64
    assert change_request.status == Status.PENDING
    assert AuditEntry.objects.filter(change_request_id=change_request.pk, action="change_request.created").count() == 1


def test_viewer_cannot_request_and_reason_is_required(viewer, editor, running):
    with pytest.raises(PermissionDenied):
        request(viewer, running, {"rolloutPercentage": 20})
    with pytest.raises(ValidationError):
        request(editor, running, {"rolloutPercentage": 20}, reason="  ")
    assert not ChangeRequest.objects.exists()


def test_requester_cannot_approve_own_request(approver, running):
    change_request = request(approver, running, {"rolloutPercentage": 20})
    with pytest.raises(PermissionDenied, match="own request"):
        cr.change_request_approve(approver=approver, change_request=change_request)
    assert change_request.approvals.count() == 0


def test_only_approvers_approve(editor, make_user, running):
    other_editor = make_user("ed2", "Editor")
    change_request = request(editor, running, {"rolloutPercentage": 20})
    with pytest.raises(PermissionDenied, match="Only approvers"):
        cr.change_request_approve(approver=other_editor, change_request=change_request)


def test_policy_can_name_the_approving_group(editor, approver, admin_user, running):
    from django.contrib.auth.models import Group

    leads = Group.objects.create(name="Experiment leads")
    cr.policy_update(actor=admin_user, policy=cr.policy_for(Tier.STANDARD), required_approvals=1, approver_group=leads)
    change_request = request(editor, running, {"rolloutPercentage": 20})
    with pytest.raises(PermissionDenied, match="Experiment leads"):
        cr.change_request_approve(approver=approver, change_request=change_request)
    approver.groups.add(leads)
    cr.change_request_approve(approver=approver, change_request=change_request)
    assert ChangeRequest.objects.get(pk=change_request.pk).status == Status.APPLIED


def test_only_admins_edit_the_policy(approver):
    with pytest.raises(PermissionDenied):
        cr.policy_update(actor=approver, policy=cr.policy_for(Tier.HIGH), required_approvals=0)
    assert Policy.objects.get(tier=Tier.HIGH).required_approvals == 2


def test_high_risk_needs_two_distinct_approvers(editor, approver, second_approver, running, upstream_client):
    change_request = request(editor, running, {"rolloutPercentage": 90})
    cr.change_request_approve(approver=approver, change_request=change_request)
    with pytest.raises(PermissionDenied, match="already approved"):
        cr.change_request_approve(approver=approver, change_request=change_request)
    assert ChangeRequest.objects.get(pk=change_request.pk).status == Status.PENDING
    assert upstream_client.get_experiment(running).rollout_percentage == 10
    cr.change_request_approve(approver=second_approver, change_request=change_request)
    assert ChangeRequest.objects.get(pk=change_request.pk).status == Status.APPLIED
    assert upstream_client.get_experiment(running).rollout_percentage == 90


def test_editing_a_request_voids_its_approvals(editor, approver, second_approver, running):
    change_request = request(editor, running, {"rolloutPercentage": 90})
    cr.change_request_approve(approver=approver, change_request=change_request)
    old_hash = change_request.plan_hash
    edited = cr.change_request_edit(actor=editor, change_request=change_request,
                                    plan=[{"op": "update_experiment", "fields": {"rolloutPercentage": 95}}],
                                    reason="a bit more")
    assert edited.plan_hash != old_hash
    assert cr.current_approvals(edited).count() == 0
    cr.change_request_approve(approver=second_approver, change_request=edited)
    assert ChangeRequest.objects.get(pk=edited.pk).status == Status.PENDING  # one valid approval of two
    assert AuditEntry.objects.filter(change_request_id=edited.pk, action="change_request.edited").exists()


def test_approval_of_a_stale_page_is_refused(editor, approver, running):
    change_request = request(editor, running, {"rolloutPercentage": 20})
    with pytest.raises(ValidationError, match="changed since you opened it"):
        cr.change_request_approve(approver=approver, change_request=change_request, plan_hash="0" * 64)


def test_only_the_requester_edits_or_cancels(editor, approver, make_user, running):
    change_request = request(editor, running, {"rolloutPercentage": 20})
    other = make_user("ed3", "Editor")
    with pytest.raises(PermissionDenied):
        cr.change_request_cancel(actor=other, change_request=change_request)
    with pytest.raises(PermissionDenied):
        cr.change_request_edit(actor=other, change_request=change_request, plan=change_request.plan, reason="x")
    cr.change_request_cancel(actor=editor, change_request=change_request)
    assert ChangeRequest.objects.get(pk=change_request.pk).status == Status.CANCELLED
    with pytest.raises(PermissionDenied, match="cancelled"):
        cr.change_request_approve(approver=approver, change_request=change_request)


def test_reject_needs_a_comment(editor, approver, running):
    change_request = request(editor, running, {"rolloutPercentage": 20})
    with pytest.raises(ValidationError):
        cr.change_request_reject(approver=approver, change_request=change_request, comment=" ")
    cr.change_request_reject(approver=approver, change_request=change_request, comment="Too early")
    change_request.refresh_from_db()
    assert change_request.status == Status.REJECTED
    assert change_request.comments.get().body == "Too early"


def test_pending_requests_expire(editor, approver, running, settings):
    change_request = request(editor, running, {"rolloutPercentage": 20})
    assert cr.change_requests_expire() == 0
    assert cr.change_requests_expire(now=timezone.now() + timedelta(days=settings.CHANGE_REQUEST_EXPIRY_DAYS, minutes=1)) == 1
    change_request.refresh_from_db()
    assert change_request.status == Status.EXPIRED
    with pytest.raises(PermissionDenied):
        cr.change_request_approve(approver=approver, change_request=change_request)


def test_comment_thread(editor, approver, running):
    change_request = request(editor, running, {"rolloutPercentage": 20})
    cr.change_request_comment(author=approver, change_request=change_request, body="Why 20?")
    cr.change_request_comment(author=editor, change_request=change_request, body="Load test")
    assert [c.body for c in change_request.comments.all()] == ["Why 20?", "Load test"]


def test_approved_request_is_applied_once_with_a_new_version(editor, approver, running, upstream_client):
    change_request = request(editor, running, {"rolloutPercentage": 50})
    before = upstream_client.list_versions(running)[0].version
    cr.change_request_approve(approver=approver, change_request=change_request)
    apply_now(change_request)
    apply_now(change_request)  # a double click or a redelivered task
    assert change_request.status == Status.APPLIED
    versions = upstream_client.list_versions(running)
    assert versions[0].version == before + 1
    assert upstream_client.get_experiment(running).rollout_percentage == 50
    assert change_request.result["version_after"] == before + 1
    assert [s["ok"] for s in change_request.result["steps"]] == [True]
    entry = AuditEntry.objects.get(change_request_id=change_request.pk, action="change_request.applied")
    assert entry.correlation_id == change_request.correlation_id
    # The entry's diff compares like with like: the touched field before and after.
    assert (entry.before, entry.after) == ({"rolloutPercentage": 10}, {"rolloutPercentage": 50})
    assert {call["correlation_id"] for call in entry.upstream_calls} == {change_request.correlation_id}
    assert [s["ok"] for s in entry.detail["steps"]] == [True]


@pytest.mark.skipif(connection.vendor == "sqlite", reason="two concurrent transactions need a server database")
def test_two_concurrent_applies_push_once(editor, approver, running, upstream_client):
    change_request = request(editor, running, {"rolloutPercentage": 40})
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=Status.APPROVED)  # approved, not yet applied
    before = upstream_client.list_versions(running)[0].version
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait()
        cr.change_request_apply(change_request_id=change_request.pk)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert upstream_client.list_versions(running)[0].version == before + 1
    assert ChangeRequest.objects.get(pk=change_request.pk).status == Status.APPLIED


def test_claiming_is_a_single_conditional_update(editor, running):
    """Whatever runs the apply, only the caller that moves approved → applying pushes."""
    change_request = request(editor, running, {"rolloutPercentage": 40})
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=Status.APPROVED)
    first = ChangeRequest.objects.filter(pk=change_request.pk, status=Status.APPROVED).update(status=Status.APPLYING)
    second = ChangeRequest.objects.filter(pk=change_request.pk, status=Status.APPROVED).update(status=Status.APPLYING)
    assert (first, second) == (1, 0)


def test_upstream_change_after_the_request_is_a_conflict_and_nothing_is_pushed(editor, approver, running,
                                                                               upstream_client):
    change_request = request(editor, running, {"rolloutPercentage": 50})
    upstream_client.update_experiment(running, {"rolloutPercentage": 25})  # someone else, elsewhere
    version_now = upstream_client.list_versions(running)[0].version
    cr.change_request_approve(approver=approver, change_request=change_request)
    apply_now(change_request)
    assert change_request.status == Status.CONFLICT
    assert change_request.result["conflict"] == {"rolloutPercentage": {"snapshot": 10, "now": 25}}
    assert upstream_client.list_versions(running)[0].version == version_now
    assert upstream_client.get_experiment(running).rollout_percentage == 25
    rebased = cr.change_request_rebase(actor=editor, change_request=change_request)
    assert rebased.snapshot == {"rolloutPercentage": 25}
    assert rebased.rebased_from_id == change_request.pk and rebased.status == Status.PENDING


def test_unrelated_upstream_change_is_not_a_conflict(editor, approver, running, upstream_client):
    change_request = request(editor, running, {"rolloutPercentage": 50})
    upstream_client.update_experiment(running, {"description": "someone edited the words"})
    cr.change_request_approve(approver=approver, change_request=change_request)
    assert apply_now(change_request).status == Status.APPLIED


def test_a_failing_step_is_recorded_with_what_was_and_was_not_applied(editor, approver, running, upstream_client):
    plan = [{"op": "update_experiment", "fields": {"description": "step one"}},
            {"op": "update_variant", "key": "no-such-variant", "fields": {"name": "x"}},
            {"op": "update_experiment", "fields": {"rolloutPercentage": 30}}]
    change_request = cr.change_request_create(requester=editor, kind="multi", title="t", reason="r", plan=plan,
                                              experiment_id=running)
    cr.change_request_approve(approver=approver, change_request=change_request)
    apply_now(change_request)
    assert change_request.status == Status.FAILED
    assert [s["ok"] for s in change_request.result["steps"]] == [True, False, None]
    entry = AuditEntry.objects.get(change_request_id=change_request.pk, action="change_request.failed")
    assert entry.after is None and [s["ok"] for s in entry.detail["steps"]] == [True, False, None]
    assert change_request.error
    assert upstream_client.get_experiment(running).description == "step one"
    assert upstream_client.get_experiment(running).rollout_percentage == 10


def test_approvers_are_mailed_on_a_new_request_and_the_requester_on_each_outcome(editor, approver, running):
    change_request = request(editor, running, {"rolloutPercentage": 20})
    assert [m.to for m in mail.outbox] == [[approver.email]]
    assert "Review needed" in mail.outbox[0].subject
    cr.change_request_approve(approver=approver, change_request=change_request)
    apply_now(change_request)
    subjects = [m.subject for m in mail.outbox[1:]]
    assert any("approved" in s for s in subjects) and any("Applied" in s for s in subjects)
    assert all(m.to == [editor.email] for m in mail.outbox[1:])


def test_create_experiment_request_creates_it_upstream(editor, approver, embedded_upstream, upstream_client):
    plan = [{"op": "create_experiment", "body": {"key": "brand-new", "name": "Brand new",
                                                 "variants": [{"key": "control"}, {"key": "treatment"}]}}]
    change_request = cr.change_request_create(requester=editor, kind="create_experiment", title="t", reason="r",
                                              plan=plan)
    assert change_request.tier == Tier.STANDARD
    cr.change_request_approve(approver=approver, change_request=change_request)
    apply_now(change_request)
    assert change_request.status == Status.APPLIED
    created = upstream_client.get_experiment(change_request.experiment_id)
    assert created.key == "brand-new"
