"""Change requests: create, edit, review, apply. Every rule lives here, so it holds for htmx
requests, plain POSTs, commands and tasks alike.

Statuses: pending → approved → applying → applied | failed | conflict; pending → rejected |
cancelled | expired. Approvals count only while their plan hash is the request's current one.
"""

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from experiments_app import gateway, notifications, plans, roles, selectors
from experiments_app.audit import actions
from experiments_app.audit.services import audit_record
from experiments_app.models import (
    DEFAULT_REQUIRED_APPROVALS,
    Approval,
    ChangeRequest,
    Comment,
    Policy,
    Status,
    StatusChange,
    Tier,
)

logger = logging.getLogger(__name__)

# kind -> callable(change_request) for requests that are not a plain plan (bulk jobs); the
# executor takes over from "applying" and must end in change_request_mark_applied/_failed.
# The closer (optional) hears, inside the same transaction, that such a request left review
# without being applied: rejected, cancelled or expired.
EXECUTORS: dict[str, Callable[[ChangeRequest], None]] = {}
CLOSERS: dict[str, Callable[[ChangeRequest], None]] = {}
_BULK_TIERS = {Tier.BULK_SMALL, Tier.BULK_LARGE, Tier.BULK_SWEEP}


def register_executor(kind: str, executor: Callable[[ChangeRequest], None], *,
                      closer: Callable[[ChangeRequest], None] | None = None) -> None:
    EXECUTORS[kind] = executor
    if closer is not None:
        CLOSERS[kind] = closer


def policy_for(tier: str) -> Policy:
    policy, _ = Policy.objects.get_or_create(tier=tier, defaults={"required_approvals": DEFAULT_REQUIRED_APPROVALS[tier]})
    return policy


def policy_update(*, actor, policy: Policy, required_approvals: int, approver_group=None) -> Policy:
    _require(actor, roles.ADMINISTER, "Only admins can change the approval policy.")
    with transaction.atomic():
        before = {"required_approvals": policy.required_approvals,
                  "approver_group": policy.approver_group.name if policy.approver_group else None}
        policy.required_approvals = required_approvals
        policy.approver_group = approver_group
        policy.updated_by = actor
        policy.save()
        audit_record(action=actions.POLICY_CHANGED, actor=actor, before=before, detail={"tier": policy.tier},
                     after={"required_approvals": required_approvals,
                            "approver_group": approver_group.name if approver_group else None})
    return policy


def _require(user, permission: str, message: str) -> None:
    if not user.has_perm(permission):
        raise PermissionDenied(message)


def _set_status(change_request: ChangeRequest, status: str, *, actor=None, note: str = "") -> None:
    change_request.status = status
    change_request.save(update_fields=["status", "updated_at"])
    StatusChange.objects.create(change_request=change_request, status=status, actor=actor, note=note)
    if status in (Status.REJECTED, Status.CANCELLED, Status.EXPIRED) and change_request.kind in CLOSERS:
        CLOSERS[change_request.kind](change_request)


def _audit(change_request: ChangeRequest, action: str, *, actor, reason: str = "", **extra) -> None:
    audit_record(action=action, actor=actor, experiment_id=change_request.experiment_id or None,
                 experiment_key=change_request.experiment_key, change_request_id=change_request.pk,
                 correlation_id=change_request.correlation_id, reason=reason, **extra)


def _read_base(experiment_id: str) -> tuple[gateway.Experiment, int | None]:
    """The experiment as the upstream has it now, and its latest version number (uncached)."""
    client = gateway.get_client()
    experiment = client.get_experiment(experiment_id)
    versions = client.list_versions(experiment_id)
    return experiment, (versions[0].version if versions else None)


def change_request_create(*, requester, kind: str, title: str, reason: str, plan: list[dict],
                          experiment_id: str = "", tier: str | None = None,
                          snapshot: dict | None = None) -> ChangeRequest:
    """Records a request for `plan`, bound to the upstream state it was made against.

    Raises PermissionDenied, ValidationError, or a gateway.UpstreamError when the snapshot
    cannot be read.
    """
    _require(requester, roles.REQUEST, "Only editors can request changes.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why this change is needed."})
    if not plan:
        raise ValidationError("This request changes nothing.")
    experiment, base_version = _read_base(experiment_id) if experiment_id else (None, None)
    tier = tier or plans.classify(plan, experiment)
    policy = policy_for(tier)
    with transaction.atomic():
        change_request = ChangeRequest.objects.create(
            kind=kind, tier=tier, title=title[:300], reason=reason.strip(), requester=requester,
            experiment_id=experiment_id, experiment_key=experiment.key if experiment else "",
            plan=plan, base_version=base_version,
            snapshot=snapshot if snapshot is not None else plans.snapshot(experiment, plan),
            plan_hash=plans.plan_hash(plan, base_version), required_approvals=policy.required_approvals,
            approver_group=policy.approver_group, correlation_id=f"cr-{uuid.uuid4().hex[:16]}",
            expires_at=timezone.now() + timedelta(days=settings.CHANGE_REQUEST_EXPIRY_DAYS),
        )
        StatusChange.objects.create(change_request=change_request, status=Status.PENDING, actor=requester)
        _audit(change_request, actions.CHANGE_REQUEST_CREATED, actor=requester, reason=change_request.reason,
               after={"plan": plan, "tier": tier}, upstream_version_before=base_version)
        if policy.required_approvals == 0:
            _approve_fully(change_request, actor=None, note="No approval needed by policy")
        else:
            transaction.on_commit(lambda: notifications.request_created(change_request))
    return change_request


def change_request_edit(*, actor, change_request: ChangeRequest, plan: list[dict], reason: str,
                        tier: str | None = None) -> ChangeRequest:
    """Replaces the plan (re-read against the upstream): every approval given so far is void.
    ``tier`` is for plans the portal cannot classify itself (a bulk job knows its own)."""
    _check_editable(actor, change_request, reason)
    # Read the upstream before taking the row lock: no HTTP call inside a transaction.
    experiment, base_version = _read_base(change_request.experiment_id) if change_request.experiment_id \
        else (None, None)
    with transaction.atomic():
        change_request = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
        _check_editable(actor, change_request, reason)
        before = {"plan": change_request.plan, "plan_hash": change_request.plan_hash}
        tier = tier or (plans.classify(plan, experiment) if change_request.tier not in _BULK_TIERS
                        else change_request.tier)
        policy = policy_for(tier)
        change_request.plan = plan
        change_request.reason = reason.strip()
        change_request.base_version = base_version
        change_request.snapshot = plans.snapshot(experiment, plan)
        change_request.plan_hash = plans.plan_hash(plan, base_version)
        change_request.tier = tier
        change_request.required_approvals = policy.required_approvals
        change_request.approver_group = policy.approver_group
        change_request.save()
        StatusChange.objects.create(change_request=change_request, status=Status.PENDING, actor=actor,
                                    note="Edited: earlier approvals no longer count")
        _audit(change_request, actions.CHANGE_REQUEST_EDITED, actor=actor, reason=change_request.reason,
               before=before, after={"plan": plan, "plan_hash": change_request.plan_hash})
        if policy.required_approvals == 0:
            _approve_fully(change_request, actor=None, note="No approval needed by policy")
    return change_request


def _check_editable(actor, change_request: ChangeRequest, reason: str) -> None:
    if actor != change_request.requester:
        raise PermissionDenied("Only the requester can edit a request.")
    if change_request.status != Status.PENDING:
        raise ValidationError(f"A request that is {change_request.get_status_display().lower()} cannot be edited.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why this change is needed."})


def current_approvals(change_request: ChangeRequest):
    return change_request.approvals.filter(plan_hash=change_request.plan_hash)


def can_approve(user, change_request: ChangeRequest) -> tuple[bool, str]:
    """Whether `user` may approve now, and if not, why (the page shows it; the service enforces it)."""
    if not user.has_perm(roles.APPROVE):
        return False, "Only approvers can approve."
    if user == change_request.requester:
        return False, "You cannot approve your own request."
    if change_request.approver_group_id and not user.groups.filter(pk=change_request.approver_group_id).exists():
        return False, f"Only members of {change_request.approver_group.name} can approve this request."
    if change_request.status != Status.PENDING:
        return False, f"The request is {change_request.get_status_display().lower()}."
    if change_request.expires_at <= timezone.now():
        return False, "The request has expired."
    if current_approvals(change_request).filter(approver=user).exists():
        return False, "You have already approved this version of the request."
    return True, ""


def change_request_approve(*, approver, change_request: ChangeRequest, comment: str = "",
                           plan_hash: str | None = None) -> ChangeRequest:
    """One approval, bound to the plan hash the approver saw (`plan_hash`, when the page sent it)."""
    with transaction.atomic():
        change_request = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
        allowed, why = can_approve(approver, change_request)
        if not allowed:
            raise PermissionDenied(why)
        if plan_hash is not None and plan_hash != change_request.plan_hash:
            raise ValidationError("The request changed since you opened it: review it again.")
        Approval.objects.create(change_request=change_request, approver=approver,
                                plan_hash=change_request.plan_hash, comment=comment.strip())
        if comment.strip():
            Comment.objects.create(change_request=change_request, author=approver, body=comment.strip())
        _audit(change_request, actions.CHANGE_REQUEST_APPROVED, actor=approver, reason=comment.strip(),
               detail={"plan_hash": change_request.plan_hash})
        if current_approvals(change_request).count() >= change_request.required_approvals:
            _approve_fully(change_request, actor=approver, note="All required approvals given")
        transaction.on_commit(lambda: notifications.request_reviewed(change_request, approver, "approved"))
    return change_request


def _approve_fully(change_request: ChangeRequest, *, actor, note: str) -> None:
    from experiments_app import tasks

    _set_status(change_request, Status.APPROVED, actor=actor, note=note)
    tasks.apply_change_request.delay_on_commit(change_request.pk)


def change_request_reject(*, approver, change_request: ChangeRequest, comment: str) -> ChangeRequest:
    if not comment.strip():
        raise ValidationError({"comment": "Say why you reject it."})
    with transaction.atomic():
        change_request = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
        allowed, why = can_approve(approver, change_request)
        if not allowed and not why.startswith("You have already approved"):
            raise PermissionDenied(why.replace("approve", "review"))
        Comment.objects.create(change_request=change_request, author=approver, body=comment.strip())
        _set_status(change_request, Status.REJECTED, actor=approver, note=comment.strip())
        _audit(change_request, actions.CHANGE_REQUEST_REJECTED, actor=approver, reason=comment.strip())
        transaction.on_commit(lambda: notifications.request_reviewed(change_request, approver, "rejected"))
    return change_request


def change_request_cancel(*, actor, change_request: ChangeRequest) -> ChangeRequest:
    with transaction.atomic():
        change_request = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
        if actor != change_request.requester:
            raise PermissionDenied("Only the requester can cancel a request.")
        if change_request.status != Status.PENDING:
            raise ValidationError(f"A request that is {change_request.get_status_display().lower()} cannot be cancelled.")
        _set_status(change_request, Status.CANCELLED, actor=actor)
        _audit(change_request, actions.CHANGE_REQUEST_CANCELLED, actor=actor)
    return change_request


def change_request_comment(*, author, change_request: ChangeRequest, body: str) -> Comment:
    _require(author, roles.VIEW, "You cannot comment here.")
    if not body.strip():
        raise ValidationError({"body": "Write something first."})
    with transaction.atomic():
        comment = Comment.objects.create(change_request=change_request, author=author, body=body.strip())
        _audit(change_request, actions.CHANGE_REQUEST_COMMENTED, actor=author, reason=body.strip())
    return comment


def change_requests_expire(*, now=None) -> int:
    """Pending requests past their expiry become expired (beat runs this)."""
    now = now or timezone.now()
    expired = 0
    for pk in ChangeRequest.objects.filter(status=Status.PENDING, expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            change_request = ChangeRequest.objects.select_for_update().get(pk=pk)
            if change_request.status != Status.PENDING:
                continue
            _set_status(change_request, Status.EXPIRED, note="Not reviewed in time")
            _audit(change_request, actions.CHANGE_REQUEST_EXPIRED, actor="system:expiry")
            expired += 1
    return expired


def change_request_rebase(*, actor, change_request: ChangeRequest) -> ChangeRequest:
    """A new request with the same plan, made against the upstream as it is now."""
    if change_request.status != Status.CONFLICT:
        raise ValidationError("Only a request in conflict can be rebased.")
    rebased = change_request_create(requester=actor, kind=change_request.kind, title=change_request.title,
                                    reason=change_request.reason, plan=change_request.plan,
                                    experiment_id=change_request.experiment_id)
    ChangeRequest.objects.filter(pk=rebased.pk).update(rebased_from=change_request)
    rebased.rebased_from = change_request
    return rebased


# --- Applying ------------------------------------------------------------------------------

def change_request_apply(*, change_request_id: int) -> None:
    """Pushes an approved plan upstream, once.

    Claiming is one conditional UPDATE (approved → applying): a double click, a retried task or
    a redelivered message finds nothing to claim and does nothing.
    """
    claimed = ChangeRequest.objects.filter(pk=change_request_id, status=Status.APPROVED) \
        .update(status=Status.APPLYING, updated_at=timezone.now())
    if not claimed:
        return
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    StatusChange.objects.create(change_request=change_request, status=Status.APPLYING)
    if change_request.kind in EXECUTORS:
        EXECUTORS[change_request.kind](change_request)
        return
    client = gateway.get_client()
    with gateway.correlation(change_request.correlation_id), gateway.recording() as calls:
        try:
            _push(client, change_request, calls)
        finally:
            selectors.upstream_cache_clear()


def _push(client, change_request: ChangeRequest, calls: list) -> None:
    experiment_id = change_request.experiment_id
    version_before = None
    if experiment_id:
        try:
            current, version_before = _read_base(experiment_id)
        except gateway.UpstreamError as error:
            change_request_mark_failed(change_request=change_request, error=f"Could not read the experiment: {error}",
                                       result={"steps": [], "calls": _calls(calls)})
            return
        changed = {field: {"snapshot": before, "now": current.raw.get(field)}
                   for field, before in change_request.snapshot.items() if current.raw.get(field) != before}
        if changed:
            _mark_conflict(change_request, changed, version_before, calls)
            return
    steps = []
    for index, op in enumerate(change_request.plan):
        try:
            outcome = plans.apply_operation(client, experiment_id, op)
        except gateway.UpstreamError as error:
            steps.append({"op": plans.describe(op), "ok": False, "error": str(error)})
            steps += [{"op": plans.describe(rest), "ok": None} for rest in change_request.plan[index + 1:]]
            change_request_mark_failed(
                change_request=change_request, error=str(error),
                result={"steps": steps, "calls": _calls(calls), "version_before": version_before})
            return
        steps.append({"op": plans.describe(op), "ok": True, **outcome})
        experiment_id = outcome.get("experiment_id", experiment_id)
    version_after = None
    if experiment_id:
        try:
            version_after = client.list_versions(experiment_id)[0].version
        except (gateway.UpstreamError, IndexError):
            version_after = None
    change_request_mark_applied(change_request=change_request, result={
        "steps": steps, "calls": _calls(calls), "version_before": version_before, "version_after": version_after,
        "experiment_id": experiment_id,
    })


def _calls(calls: list) -> list[dict]:
    """The gateway's call records as stored on the request (correlation id and error included)."""
    return [{**dataclasses.asdict(c), "latency_ms": round(c.latency_ms, 1)} for c in calls]


def _mark_conflict(change_request: ChangeRequest, changed: dict, version_now, calls) -> None:
    with transaction.atomic():
        change_request.result = {"conflict": changed, "version_now": version_now, "calls": _calls(calls)}
        change_request.save(update_fields=["result", "updated_at"])
        _set_status(change_request, Status.CONFLICT,
                    note="Changed upstream since the request was made: " + ", ".join(sorted(changed)))
        _audit(change_request, actions.CHANGE_REQUEST_CONFLICTED, actor="system:apply",
               before={f: c["snapshot"] for f, c in changed.items()}, after={f: c["now"] for f, c in changed.items()},
               upstream_calls=calls, upstream_version_before=change_request.base_version,
               upstream_version_after=version_now)
        transaction.on_commit(lambda: notifications.request_outcome(change_request))


def change_request_mark_applied(*, change_request: ChangeRequest, result: dict) -> None:
    with transaction.atomic():
        change_request.result = result
        change_request.applied_at = timezone.now()
        if result.get("experiment_id") and not change_request.experiment_id:
            change_request.experiment_id = result["experiment_id"]
        change_request.save(update_fields=["result", "applied_at", "experiment_id", "updated_at"])
        _set_status(change_request, Status.APPLIED)
        _audit(change_request, actions.CHANGE_REQUEST_APPLIED, actor="system:apply",
               before=change_request.snapshot,
               after=plans.proposed_config(change_request.snapshot, change_request.plan),
               detail={"steps": result.get("steps", [])},
               upstream_calls=result.get("calls"), upstream_version_before=result.get("version_before"),
               upstream_version_after=result.get("version_after"))
        transaction.on_commit(lambda: notifications.request_outcome(change_request))


def change_request_mark_failed(*, change_request: ChangeRequest, error: str, result: dict) -> None:
    with transaction.atomic():
        change_request.result = result
        change_request.error = error
        change_request.save(update_fields=["result", "error", "updated_at"])
        _set_status(change_request, Status.FAILED, note=error)
        _audit(change_request, actions.CHANGE_REQUEST_FAILED, actor="system:apply", reason=error,
               detail={"steps": result.get("steps", [])}, upstream_calls=result.get("calls"),
               upstream_version_before=result.get("version_before"))
        transaction.on_commit(lambda: notifications.request_outcome(change_request))
