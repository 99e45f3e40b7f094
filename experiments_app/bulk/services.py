"""Bulk inclusion jobs: preview, review, execution, verification, cancel and undo.

The life of a job
-----------------
1. ``bulk_job_create`` parses nothing (see parsing.py): it takes clean ids and the targets,
   reads every target variant once (the preview), refuses a job that would break the
   2,000-inclusion cap, and stores a *draft* job with its ledger: one item per (target, id,
   action), ``pending`` when it will change something and ``skipped`` when the id is already
   there (add) or absent (remove). A sweep stores items only for ids actually present. From the
   pages a sweep goes through ``bulk_sweep_draft`` instead: its many reads run in a worker
   (``bulk_job_build_preview``, status "previewing", progress on the job page).
2. ``bulk_job_submit`` turns the draft into a change request whose plan is
   ``[{"op": "bulk_job", "job": pk, "hash": fingerprint}]``: approvals are bound to the SHA-256
   of the full id list, the targets and the kind (``job_fingerprint``).
3. Once approved, the change-request apply flow calls ``start_bulk_job`` (registered as the
   "bulk_job" executor), which queues ``run_bulk_job`` on commit.
4. ``bulk_job_run`` claims the job with a lease (one conditional UPDATE: owner + heartbeat),
   refuses to run a job whose ledger no longer matches the approved hash, and works the
   ledger target by target (a few targets at a time in threads, all inside the gateway's
   shared rate budget): re-read the variant once before its first write, then chunks of
   pending ids -- removals first (bulk delete by value, at most 100 ids a call), then adds --
   each chunk marked applied in one UPDATE after its call succeeded. A heartbeat thread renews
   the lease every second and flags a cancel, which the chunk loop obeys before the next call. Both upstream calls are idempotent (set semantics,
   removal by value), so a chunk re-sent after a crash between the call and the UPDATE changes
   nothing twice.
5. A worker killed mid-job stops renewing the heartbeat; beat's ``bulk_jobs_requeue_stale``
   re-queues the job and the next worker takes the lease over and carries on from the ledger.
6. At the end every touched variant is read back: applied adds must be present, applied
   removals absent (and for a replace, the variant must hold exactly the list). The job and
   its change request are closed in one transaction. ``bulk_job_undo`` drafts a new job that
   reverses exactly the applied items; it is reviewed like any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from experiments_app import gateway, roles
from experiments_app.audit import actions
from experiments_app.audit.services import audit_record
from experiments_app.bulk.models import (
    ACTIVE_STATUSES,
    Action,
    BulkJob,
    BulkJobItem,
    BulkTarget,
    ItemStatus,
    JobStatus,
    Kind,
    SweepFilter,
)
from experiments_app.models import ChangeRequest, Tier
from experiments_app.models import Status as RequestStatus

logger = logging.getLogger("experiments_app.bulk")

INCLUSION_CAP = 2000
BULK_DELETE_MAX = 100
SAMPLE = 20
DB_BATCH = 500
SINGLE_TARGET_KINDS = (Kind.ADD, Kind.REMOVE, Kind.REPLACE, Kind.COPY)


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- Fingerprint -------------------------------------------------------------------------------

def job_fingerprint(job: BulkJob) -> str:
    """SHA-256 of what the job does: kind, source, sweep filter, the sorted ids and targets (and
    for an undo, every item it reverses). Status changes do not alter it; any edit of the ids
    or targets does."""
    digest = hashlib.sha256()
    header = {"kind": job.kind, "source": [job.source_experiment_id, job.source_variant_key],
              "sweep": [job.sweep_filter, job.sweep_value], "undo_of": job.undo_of_id}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(b"\x00ids\x00")
    for user_id in sorted(job.ids):
        digest.update(user_id.encode() + b"\n")
    digest.update(b"\x00targets\x00")
    for experiment_id, variant_key in sorted(job.targets.values_list("experiment_id", "variant_key")):
        digest.update(f"{experiment_id}\x1f{variant_key}\n".encode())
    if job.kind == Kind.UNDO:
        digest.update(b"\x00items\x00")
        items = job.items.values_list("target__experiment_id", "target__variant_key", "action", "user_id")
        for row in sorted(items):
            digest.update("\x1f".join(row).encode() + b"\n")
    return digest.hexdigest()


# --- Preview -----------------------------------------------------------------------------------

@dataclass
class TargetPlan:
    experiment_id: str
    experiment_key: str
    variant_key: str
    current: int
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # add: present already
    absent: list[str] = field(default_factory=list)  # remove: not there
    final: int = 0

    @property
    def over_cap(self) -> bool:
        return self.final > INCLUSION_CAP

    @property
    def calls(self) -> int:
        """Calls the worker will make: one read before writing, the writes, one read to verify
        (a variant with nothing to write still gets its read: something may have changed)."""
        writes = math.ceil(len(self.add) / add_chunk_size()) + math.ceil(len(self.remove) / BULK_DELETE_MAX)
        return 2 + writes if writes else 1


@dataclass
class Preview:
    kind: str
    ids: list[str]
    targets: list[TargetPlan]
    invalid: int = 0
    reads: int = 0  # upstream reads the preview itself made
    problems: list[str] = field(default_factory=list)
    sweep_absent: int | None = None  # a sweep counts absent ids once for the whole list

    @property
    def add(self) -> int:
        return sum(len(t.add) for t in self.targets)

    @property
    def remove(self) -> int:
        return sum(len(t.remove) for t in self.targets)

    @property
    def already(self) -> int:
        return sum(len(t.already) for t in self.targets)

    @property
    def absent(self) -> int:
        if self.sweep_absent is not None:
            return self.sweep_absent
        return sum(len(t.absent) for t in self.targets)

    @property
    def over_cap(self) -> list[TargetPlan]:
        return [t for t in self.targets if t.over_cap]

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.targets)

    @property
    def refused(self) -> bool:
        return bool(self.over_cap or self.problems)

    def as_dict(self) -> dict:
        remaining = gateway.budget_remaining()
        quota = int(_setting("UPSTREAM_DAILY_QUOTA", 100_000))
        return {
            "ids": len(self.ids), "targets": len(self.targets), "add": self.add, "remove": self.remove,
            "already": self.already, "absent": self.absent, "invalid": self.invalid,
            "over_cap": [{"target": f"{t.experiment_key or t.experiment_id}/{t.variant_key}",
                          "current": t.current, "adding": len(t.add), "would_hold": t.final}
                         for t in self.over_cap],
            "calls": self.calls, "preview_reads": self.reads,
            "budget_remaining": remaining, "budget_quota": quota,
            "budget_share": round(100 * self.calls / remaining, 2) if remaining else None,
            "quota_share": round(100 * self.calls / quota, 2) if quota else None,
            "problems": self.problems,
        }


def add_chunk_size() -> int:
    return max(1, min(int(_setting("BULK_ADD_CHUNK_SIZE", 100)), INCLUSION_CAP))


def _plan_target(experiment_id: str, experiment_key: str, variant_key: str, current: list[str], *,
                 kind: str, ids: list[str]) -> TargetPlan:
    present = set(current)
    plan = TargetPlan(experiment_id, experiment_key, variant_key, current=len(current))
    if kind in (Kind.ADD, Kind.COPY, Kind.REPLACE):
        for user_id in ids:
            (plan.already if user_id in present else plan.add).append(user_id)
    if kind == Kind.REPLACE:
        wanted = set(ids)
        plan.remove = [user_id for user_id in current if user_id not in wanted]
    if kind in (Kind.REMOVE, Kind.SWEEP):
        for user_id in ids:
            (plan.remove if user_id in present else plan.absent).append(user_id)
    plan.final = len(current) + len(plan.add) - len(plan.remove)
    return plan


def _matching_experiments(sweep_filter: str, sweep_value: str) -> list[gateway.Experiment]:
    client = gateway.get_client()
    if sweep_filter == SweepFilter.DEPLOYMENT:  # a deployment may be named by id, label or key
        sweep_value = next((d.id for d in client.list_deployments() if sweep_value in (d.id, d.label, d.key)),
                           sweep_value)
    found = []
    for experiment in client.iter_experiments():
        if sweep_filter == SweepFilter.TAG and sweep_value not in experiment.tags:
            continue
        if sweep_filter == SweepFilter.DEPLOYMENT and sweep_value not in experiment.deployments:
            continue
        found.append(experiment)
    return found


def bulk_job_preview(*, kind: str, ids: list[str], experiment_id: str = "", variant_key: str = "",
                     source_experiment_id: str = "", source_variant_key: str = "", sweep_filter: str = "",
                     sweep_value: str = "", invalid: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> Preview:
    """What the job would do, from a fresh read of every target. Raises gateway errors.
    ``progress(done, total)`` hears of every variant a sweep has read."""
    client = gateway.get_client()
    with gateway.recording() as calls:
        if kind == Kind.COPY:
            ids = client.list_inclusions(source_experiment_id, source_variant_key)
        preview = Preview(kind=kind, ids=list(ids), targets=[], invalid=invalid)
        if kind == Kind.SWEEP:
            experiments = _matching_experiments(sweep_filter, sweep_value)
            targets = [(e.id, e.key, v["key"]) for e in experiments for v in e.variants if v.get("key")]
            if not targets:
                preview.problems.append("No experiment matches the filter.")
            wanted = set(ids)
            for done, (target_id, target_key, target_variant) in enumerate(targets):
                if progress:
                    progress(done, len(targets))
                present = [u for u in client.list_inclusions(target_id, target_variant) if u in wanted]
                # Only ids actually present become ledger items: a sweep's absent ids are not stored.
                preview.targets.append(TargetPlan(target_id, target_key, target_variant, current=len(present),
                                                  remove=present))
            preview.sweep_absent = len(wanted - {u for t in preview.targets for u in t.remove})
            if progress:
                progress(len(targets), len(targets))
        else:
            experiment = client.get_experiment(experiment_id)
            if not any(v.get("key") == variant_key for v in experiment.variants):
                raise ValidationError({"variant_key": f"{experiment.key} has no variant {variant_key!r}."})
            current = client.list_inclusions(experiment_id, variant_key)
            preview.targets.append(_plan_target(experiment_id, experiment.key, variant_key, current, kind=kind,
                                                ids=preview.ids))
            if kind == Kind.COPY and source_experiment_id == experiment_id and source_variant_key == variant_key:
                preview.problems.append("The source and the target are the same variant.")
        if not preview.ids:
            preview.problems.append("There are no ids to work with." if kind != Kind.COPY
                                    else "The source variant has no inclusions to copy.")
    preview.reads = len(calls)
    return preview


def _tier(kind: str, targets: int, ids: int, changes: int, *, undo_of: BulkJob | None = None) -> str:
    if kind == Kind.SWEEP or (undo_of is not None and undo_of.kind == Kind.SWEEP):
        return Tier.BULK_SWEEP
    small = int(_setting("BULK_SMALL_MAX_IDS", 50))
    if targets == 1 and ids <= small and changes <= small:
        return Tier.BULK_SMALL
    return Tier.BULK_LARGE


def job_tier(job: BulkJob) -> str:
    changes = job.items.filter(status=ItemStatus.PENDING).count()
    return _tier(job.kind, job.targets.count(), job.id_count, changes, undo_of=job.undo_of)


# --- Creating, submitting ----------------------------------------------------------------------

def experiment_resolve(reference: str) -> gateway.Experiment:
    """The experiment with id or key ``reference``; ValidationError when there is none."""
    client = gateway.get_client()
    if reference.isdigit():
        try:
            return client.get_experiment(reference)
        except gateway.NotFound:
            pass
    for experiment in client.iter_experiments():
        if experiment.key == reference:
            return experiment
    raise ValidationError(f"There is no experiment {reference!r}.")


def _require(user, permission: str, message: str) -> None:
    if not user.has_perm(permission):
        raise PermissionDenied(message)


def _bulk_insert(objects: Iterable, model) -> None:
    batch = []
    for obj in objects:
        batch.append(obj)
        if len(batch) >= 2000:
            model.objects.bulk_create(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)


def _items_for(job: BulkJob, target: BulkTarget, plan: TargetPlan):
    for user_id in plan.add:
        yield BulkJobItem(job=job, target=target, user_id=user_id, action=Action.ADD)
    for user_id in plan.already:
        yield BulkJobItem(job=job, target=target, user_id=user_id, action=Action.ADD, status=ItemStatus.SKIPPED,
                          note="already included")
    for user_id in plan.remove:
        yield BulkJobItem(job=job, target=target, user_id=user_id, action=Action.REMOVE)
    for user_id in plan.absent:
        yield BulkJobItem(job=job, target=target, user_id=user_id, action=Action.REMOVE,
                          status=ItemStatus.SKIPPED, note="not included")


def _check_job(*, requester, kind: str, reason: str, experiment_id: str, variant_key: str,
               source_experiment_id: str, source_variant_key: str, sweep_filter: str, sweep_value: str) -> str:
    """Refuse what no preview can fix; returns the sweep value as stored."""
    _require(requester, roles.REQUEST, "Only editors can create bulk jobs.")
    if kind not in SINGLE_TARGET_KINDS + (Kind.SWEEP,):
        raise ValidationError({"kind": "Unknown kind of job."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why this change is needed."})
    if kind in SINGLE_TARGET_KINDS and not (experiment_id and variant_key):
        raise ValidationError("Choose the experiment and the variant.")
    if kind == Kind.COPY and not (source_experiment_id and source_variant_key):
        raise ValidationError("Choose the variant to copy from.")
    if kind == Kind.SWEEP and sweep_filter != SweepFilter.ALL and not sweep_value:
        raise ValidationError({"sweep_value": "Say which tag or deployment."})
    return "" if kind == Kind.SWEEP and sweep_filter == SweepFilter.ALL else sweep_value


def bulk_job_create(*, requester, kind: str, ids: list[str], title: str, reason: str, experiment_id: str = "",
                    variant_key: str = "", source_experiment_id: str = "", source_variant_key: str = "",
                    sweep_filter: str = "", sweep_value: str = "") -> tuple[BulkJob | None, Preview]:
    """Preview the job and, unless the preview refuses it, store it as a draft with its ledger."""
    sweep_value = _check_job(requester=requester, kind=kind, reason=reason, experiment_id=experiment_id,
                             variant_key=variant_key, source_experiment_id=source_experiment_id,
                             source_variant_key=source_variant_key, sweep_filter=sweep_filter,
                             sweep_value=sweep_value)
    preview = bulk_job_preview(kind=kind, ids=ids, experiment_id=experiment_id, variant_key=variant_key,
                               source_experiment_id=source_experiment_id, source_variant_key=source_variant_key,
                               sweep_filter=sweep_filter, sweep_value=sweep_value)
    if preview.refused:
        return None, preview
    source_key = ""
    if kind == Kind.COPY:
        source_key = gateway.get_client().get_experiment(source_experiment_id).key
    with transaction.atomic():
        job = BulkJob.objects.create(
            kind=kind, requester=requester, title=title.strip()[:300],
            reason=reason.strip(), source_experiment_id=source_experiment_id if kind == Kind.COPY else "",
            source_experiment_key=source_key, source_variant_key=source_variant_key if kind == Kind.COPY else "",
            sweep_filter=sweep_filter if kind == Kind.SWEEP else "", sweep_value=sweep_value,
            ids_text="\n".join(preview.ids), id_count=len(preview.ids), fingerprint="",
        )
        _store_preview(job, preview)
    return job, preview


def _store_preview(job: BulkJob, preview: Preview) -> None:
    """Store the preview and its ledger on ``job`` (inside the caller's transaction)."""
    _store_targets(job, preview.targets)
    job.title = job.title or _default_title(job.kind, len(preview.ids), preview.targets)[:300]
    job.preview = preview.as_dict()
    job.fingerprint = job_fingerprint(job)
    job.preview["tier"] = job_tier(job)
    job.save()


# A sweep reads every variant of every matching experiment: hundreds of reads inside the rate
# budget, too long for a web request. The page stores the job as "previewing" and a worker
# reads, reporting how far it got; the job becomes a draft (or fails, saying why) when done.
PREVIEW_PROGRESS_SECONDS = 1.0


def bulk_sweep_draft(*, requester, ids: list[str], title: str, reason: str, sweep_filter: str,
                     sweep_value: str) -> BulkJob:
    """Store a sweep as "previewing" and queue its preview (``bulk_job_build_preview``)."""
    from experiments_app.bulk.tasks import build_bulk_preview

    sweep_value = _check_job(requester=requester, kind=Kind.SWEEP, reason=reason, experiment_id="",
                             variant_key="", source_experiment_id="", source_variant_key="",
                             sweep_filter=sweep_filter, sweep_value=sweep_value)
    if not ids:
        raise ValidationError("There are no ids to work with.")
    with transaction.atomic():
        job = BulkJob.objects.create(
            kind=Kind.SWEEP, status=JobStatus.PREVIEWING, requester=requester, title=title.strip()[:300],
            reason=reason.strip(), sweep_filter=sweep_filter, sweep_value=sweep_value, ids_text="\n".join(ids),
            id_count=len(ids), fingerprint="", preview={"reading": {"done": 0, "total": None}})
        build_bulk_preview.delay_on_commit(job.pk)
    return job


def bulk_job_build_preview(*, job_id: int) -> str:
    """Work a "previewing" job's reads (a sweep's preview, an undo's ledger); safe to run twice
    (only one run ends it)."""
    job = BulkJob.objects.select_related("undo_of").filter(pk=job_id, status=JobStatus.PREVIEWING).first()
    if job is None:
        return "not-previewing"
    last_report = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last_report
        if done < total and time.monotonic() - last_report < PREVIEW_PROGRESS_SECONDS:
            return
        last_report = time.monotonic()
        BulkJob.objects.filter(pk=job_id, status=JobStatus.PREVIEWING) \
            .update(preview={"reading": {"done": done, "total": total}}, updated_at=_now())

    try:
        if job.kind == Kind.UNDO:
            targets, present = _read_undo_targets(job, progress)
        else:
            preview = bulk_job_preview(kind=job.kind, ids=job.ids, sweep_filter=job.sweep_filter,
                                       sweep_value=job.sweep_value, progress=progress)
    except gateway.UpstreamError as error:
        return _preview_failed(job_id, f"The experiment service could not be read: {error.message}. "
                                       "Nothing was queued; draft the job again.")
    if job.kind != Kind.UNDO and preview.refused:
        return _preview_failed(job_id, "Refused: " + " ".join(preview.problems), preview)
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().filter(pk=job_id, status=JobStatus.PREVIEWING).first()
        if job is None:  # cancelled, or another run finished first
            return "not-previewing"
        job.items.all().delete()
        job.targets.all().delete()
        if job.kind == Kind.UNDO:
            _store_undo(job, targets, present)
        else:
            job.status = JobStatus.DRAFT
            _store_preview(job, preview)
    return job.status


def _preview_failed(job_id: int, error: str, preview: Preview | None = None) -> str:
    BulkJob.objects.filter(pk=job_id, status=JobStatus.PREVIEWING).update(
        status=JobStatus.FAILED, error=error, finished_at=_now(), updated_at=_now(),
        preview=preview.as_dict() if preview else {})
    return JobStatus.FAILED


def _store_targets(job: BulkJob, plans: list[TargetPlan]) -> None:
    BulkTarget.objects.bulk_create([
        BulkTarget(job=job, position=n, experiment_id=p.experiment_id, experiment_key=p.experiment_key,
                   variant_key=p.variant_key) for n, p in enumerate(plans)])
    targets = list(job.targets.order_by("position"))
    _bulk_insert((item for target, plan in zip(targets, plans) for item in _items_for(job, target, plan)),
                 BulkJobItem)


def _default_title(kind: str, id_count: int, targets: list) -> str:
    """The title a job gets when its requester gives none (``targets``: TargetPlans or BulkTargets)."""
    where = f"{targets[0].experiment_key}/{targets[0].variant_key}" if targets and kind != Kind.SWEEP \
        else f"{len(targets)} variants"
    return f"Bulk {Kind(kind).label.lower()}: {id_count:,} ids, {where}"


def bulk_job_submit(*, actor, job: BulkJob) -> ChangeRequest:
    """Send a draft for review as a change request bound to the job's fingerprint."""
    from experiments_app.change_requests import change_request_create

    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if actor != job.requester:
            raise PermissionDenied("Only the requester can submit this job.")
        if job.status != JobStatus.DRAFT:
            raise ValidationError("This job has already been submitted.")
        calls = int(job.preview.get("calls") or 0)
        if not gateway.budget_reserve_check(None, calls):
            raise ValidationError(f"Today's request budget cannot take this job ({calls:,} calls, "
                                  f"{gateway.budget_remaining():,} left). Try again after midnight UTC.")
        job.fingerprint = job_fingerprint(job)
        job.status = JobStatus.REVIEW
        job.save(update_fields=["fingerprint", "status", "updated_at"])
        change_request = change_request_create(
            requester=actor, kind="bulk_job", title=job.title, reason=job.reason,
            plan=[{"op": "bulk_job", "job": job.pk, "hash": job.fingerprint}], experiment_id="",
            tier=job_tier(job), snapshot={},
        )
        BulkJob.objects.filter(pk=job.pk).update(change_request=change_request)
        job.change_request = change_request
    return change_request


REVISABLE_KINDS = (Kind.ADD, Kind.REMOVE, Kind.REPLACE, Kind.SWEEP)


def bulk_job_revise(*, actor, job: BulkJob, ids: list[str], reason: str) -> tuple[BulkJob | None, Preview]:
    """Replace the id list of a job in review: the ledger is rebuilt from a fresh read and the
    change request's plan gets the new fingerprint (and tier), so earlier approvals no longer
    count. A list the preview refuses (the cap) changes nothing: ``(None, preview)``."""
    from experiments_app.change_requests import change_request_edit

    job = BulkJob.objects.select_related("change_request").get(pk=job.pk)
    if job.kind not in REVISABLE_KINDS:
        raise ValidationError("Only add, remove, replace and sweep jobs take a new id list.")
    if actor != job.requester:
        raise PermissionDenied("Only the requester can edit this job.")
    if job.status != JobStatus.REVIEW:
        raise ValidationError("Only a job in review can be edited.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the list changed."})
    target = job.targets.first()
    preview = bulk_job_preview(kind=job.kind, ids=ids, experiment_id=target.experiment_id if target else "",
                               variant_key=target.variant_key if target else "", sweep_filter=job.sweep_filter,
                               sweep_value=job.sweep_value)
    if preview.refused:
        return None, preview
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if job.status != JobStatus.REVIEW:
            raise ValidationError("Only a job in review can be edited.")
        if job.title == _default_title(job.kind, job.id_count, list(job.targets.all()))[:300]:
            job.title = _default_title(job.kind, len(preview.ids), preview.targets)[:300]
            ChangeRequest.objects.filter(pk=job.change_request_id).update(title=job.title)
        job.items.all().delete()
        job.targets.all().delete()
        job.ids_text = "\n".join(preview.ids)
        job.id_count = len(preview.ids)
        _store_preview(job, preview)
        change_request_edit(actor=actor, change_request=job.change_request, reason=reason,
                            plan=[{"op": "bulk_job", "job": job.pk, "hash": job.fingerprint}],
                            tier=job.preview["tier"])
    return job, preview


def start_bulk_job(change_request: ChangeRequest) -> None:
    """The change-request executor for "bulk_job": queue the worker and return."""
    from experiments_app.bulk.tasks import run_bulk_job

    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(change_request=change_request)
        if job.status != JobStatus.REVIEW:
            return
        job.status = JobStatus.QUEUED
        job.queued_at = timezone.now()
        job.save(update_fields=["status", "queued_at", "updated_at"])
        audit_record(action=actions.BULK_JOB_QUEUED, actor="system:apply", bulk_job_id=job.pk,
                     correlation_id=change_request.correlation_id,
                     detail={"kind": job.kind, "ids": job.id_count, "fingerprint": job.fingerprint,
                             "change_request": change_request.pk})
        run_bulk_job.delay_on_commit(job.pk)


_REVIEW_ENDINGS = {RequestStatus.REJECTED: JobStatus.REJECTED, RequestStatus.EXPIRED: JobStatus.EXPIRED,
                   RequestStatus.CANCELLED: JobStatus.CANCELLED}


def bulk_job_review_closed(change_request: ChangeRequest) -> None:
    """The change-request closer for "bulk_job": a review that ended without approval ends the
    job too (inside the caller's transaction); nothing was sent, so nothing is left to do."""
    status = _REVIEW_ENDINGS[change_request.status]
    BulkJob.objects.filter(change_request=change_request, status=JobStatus.REVIEW) \
        .update(status=status, finished_at=_now(), updated_at=_now())


def bulk_drafts_discard(*, max_age_hours: float | None = None) -> int:
    """Drafts nobody submitted within ``BULK_DRAFT_MAX_AGE_HOURS`` are discarded (beat runs this):
    the row stays, marked cancelled with a note, so a link to it still explains itself; its ledger
    and its id list go, since an unreviewed list of user ids (an erasure request, say) should not
    linger. Nothing of a draft was ever sent, so there is nothing else to undo."""
    hours = float(_setting("BULK_DRAFT_MAX_AGE_HOURS", 24) if max_age_hours is None else max_age_hours)
    cutoff = _now() - timedelta(hours=hours)
    discarded = 0
    for pk in BulkJob.objects.filter(status=JobStatus.DRAFT, created_at__lt=cutoff).values_list("pk", flat=True):
        with transaction.atomic():
            job = BulkJob.objects.select_for_update().filter(pk=pk, status=JobStatus.DRAFT).first()
            if job is None:  # submitted or cancelled meanwhile
                continue
            job.items.all().delete()
            job.targets.all().delete()
            job.status = JobStatus.CANCELLED
            job.ids_text = ""
            job.finished_at = _now()
            job.error = (f"Discarded: a draft not submitted within {hours:g} hours. Its ledger and id list "
                         "were deleted; draft it again to run it.")
            job.save(update_fields=["status", "ids_text", "finished_at", "error", "updated_at"])
            discarded += 1
    if discarded:
        logger.info("discarded %d bulk job draft(s) older than %g hours", discarded, hours)
    return discarded


# --- Cancel, undo ------------------------------------------------------------------------------

def bulk_job_cancel(*, actor, job: BulkJob) -> BulkJob:
    from experiments_app.change_requests import change_request_cancel, change_request_mark_failed

    if actor != job.requester and not actor.has_perm(roles.APPROVE):
        raise PermissionDenied("Only the requester or an approver can cancel this job.")
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (JobStatus.PREVIEWING, JobStatus.DRAFT):
            job.status = JobStatus.CANCELLED
            job.cancelled_by = actor
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "cancelled_by", "finished_at", "updated_at"])
        elif job.status == JobStatus.REVIEW:
            change_request_cancel(actor=actor, change_request=job.change_request)  # ends the job too
            job.refresh_from_db()
            job.cancelled_by = actor
            job.save(update_fields=["cancelled_by", "updated_at"])
        elif job.status in ACTIVE_STATUSES:
            job.cancel_requested = True
            job.cancelled_by = actor
            fields = ["cancel_requested", "cancelled_by", "updated_at"]
            if job.status == JobStatus.QUEUED and not job.lease_owner:
                job.status = JobStatus.CANCELLED
                job.finished_at = timezone.now()
                fields += ["status", "finished_at"]
                change_request_mark_failed(change_request=job.change_request, error=_cancel_note(job),
                                           result={"bulk_job": job.pk, "counts": progress_counts(job)})
            job.save(update_fields=fields)
        else:
            raise ValidationError(f"A job that is {job.get_status_display().lower()} cannot be cancelled.")
        audit_record(action=actions.BULK_JOB_CANCELLED, actor=actor, bulk_job_id=job.pk,
                     correlation_id=job.change_request.correlation_id if job.change_request else "",
                     detail={"status": job.status, "counts": progress_counts(job)})
    return job


def _cancel_note(job: BulkJob) -> str:
    counts = progress_counts(job)
    who = job.cancelled_by.get_username() if job.cancelled_by else "someone"
    return f"Cancelled by {who} after {counts['applied']:,} of {counts['total']:,} ids were applied."


def bulk_job_undo(*, actor, job: BulkJob) -> BulkJob:
    """Draft a job reversing exactly the items ``job`` applied (it is reviewed like any job). Like
    a sweep's preview, reading the variants it touched runs in the worker ("previewing")."""
    from experiments_app.bulk.tasks import build_bulk_preview

    _require(actor, roles.REQUEST, "Only editors can create bulk jobs.")
    if not job.is_finished:
        raise ValidationError("Only a finished job can be undone.")
    if not job.items.filter(status=ItemStatus.APPLIED).exists():
        raise ValidationError("This job applied nothing: there is nothing to undo.")
    with transaction.atomic():
        undo = BulkJob.objects.create(
            kind=Kind.UNDO, status=JobStatus.PREVIEWING, requester=actor,
            title=f"Undo of bulk job #{job.pk}: {job.title}"[:300], reason=f"Undo bulk job #{job.pk}", undo_of=job,
            ids_text="", id_count=0, fingerprint="", preview={"reading": {"done": 0, "total": None}})
        build_bulk_preview.delay_on_commit(undo.pk)
    return undo


def _read_undo_targets(undo: BulkJob, progress: Callable[[int, int], None]) -> tuple[list[BulkTarget], dict]:
    """The variants the undone job applied something to, each read as it is now."""
    client = gateway.get_client()
    targets = list(undo.undo_of.targets.filter(items__status=ItemStatus.APPLIED).distinct().order_by("position"))
    present = {}
    for done, target in enumerate(targets):
        progress(done, len(targets))
        present[target.pk] = set(client.list_inclusions(target.experiment_id, target.variant_key))
    progress(len(targets), len(targets))
    return targets, present


def _store_undo(undo: BulkJob, targets: list[BulkTarget], present: dict) -> None:
    """The undo's ledger: every applied item reversed, skipped where the variant already agrees
    (inside the caller's transaction)."""
    applied = undo.undo_of.items.filter(status=ItemStatus.APPLIED)
    ids: dict[str, None] = {}
    totals = {"add": 0, "remove": 0, "already": 0, "absent": 0}
    calls = 0
    for position, target in enumerate(targets):
        rows = list(applied.filter(target=target).values_list("user_id", "action"))
        new_target = BulkTarget.objects.create(job=undo, position=position, experiment_id=target.experiment_id,
                                               experiment_key=target.experiment_key, variant_key=target.variant_key)
        items = []
        adds = removes = 0
        for user_id, action in rows:
            ids[user_id] = None
            reverse = Action.REMOVE if action == Action.ADD else Action.ADD
            changes = (user_id in present[target.pk]) == (reverse == Action.REMOVE)
            note = "" if changes else ("already included" if reverse == Action.ADD else "not included")
            items.append(BulkJobItem(job=undo, target=new_target, user_id=user_id, action=reverse,
                                     status=ItemStatus.PENDING if changes else ItemStatus.SKIPPED, note=note))
            key = ("add" if reverse == Action.ADD else "remove") if changes else \
                ("already" if reverse == Action.ADD else "absent")
            totals[key] += 1
            adds += changes and reverse == Action.ADD
            removes += changes and reverse == Action.REMOVE
        _bulk_insert(items, BulkJobItem)
        writes = math.ceil(adds / add_chunk_size()) + math.ceil(removes / BULK_DELETE_MAX)
        calls += 2 + writes if writes else 0
    undo.ids_text = "\n".join(ids)
    undo.id_count = len(ids)
    remaining = gateway.budget_remaining()
    undo.preview = {**totals, "ids": len(ids), "targets": len(targets), "invalid": 0, "over_cap": [],
                    "calls": calls, "budget_remaining": remaining,
                    "budget_share": round(100 * calls / remaining, 2) if remaining else None, "problems": []}
    undo.status = JobStatus.DRAFT
    undo.fingerprint = job_fingerprint(undo)
    undo.preview["tier"] = job_tier(undo)
    undo.save()


# --- Running -----------------------------------------------------------------------------------

class _Stop(Exception):
    """The job must stop here: cancelled, or the lease was lost to another worker."""


class _Transient(Exception):
    pass


def _now():
    return timezone.now()


def _stale_cutoff(stale_seconds: float | None = None):
    seconds = float(_setting("BULK_STALE_SECONDS", 45) if stale_seconds is None else stale_seconds)
    return _now() - timedelta(seconds=seconds)


def bulk_job_claim(*, job_id: int, owner: str) -> bool:
    """Take the job's lease: free (queued), or held by a worker whose heartbeat went stale."""
    now = _now()
    return bool(BulkJob.objects.filter(pk=job_id, status__in=ACTIVE_STATUSES, cancel_requested=False)
                .filter(Q(lease_owner="") | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=_stale_cutoff()))
                .update(lease_owner=owner, heartbeat_at=now, status=JobStatus.RUNNING,
                        started_at=Coalesce("started_at", now), updated_at=now))


def bulk_jobs_requeue_stale(*, stale_seconds: float | None = None) -> list[int]:
    """Queue again every active job whose worker stopped beating, and every preview that stopped
    reporting progress (beat runs this)."""
    from experiments_app.bulk.tasks import build_bulk_preview, run_bulk_job

    cutoff = _stale_cutoff(stale_seconds)
    stale = list(BulkJob.objects.filter(status__in=ACTIVE_STATUSES)
                 .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, queued_at__lt=cutoff))
                 .values_list("pk", flat=True))
    cancelled_waiting = BulkJob.objects.filter(pk__in=stale, cancel_requested=True)
    for job in cancelled_waiting:
        _finish_cancelled_unclaimed(job)
    for pk in stale:
        logger.warning("bulk job %s: heartbeat is stale; queueing it again", pk)
        run_bulk_job.delay(pk)
    previews = list(BulkJob.objects.filter(status=JobStatus.PREVIEWING, updated_at__lt=cutoff)
                    .values_list("pk", flat=True))
    for pk in previews:
        logger.warning("bulk job %s: its preview stopped making progress; queueing it again", pk)
        build_bulk_preview.delay(pk)
    return stale + previews


def _finish_cancelled_unclaimed(job: BulkJob) -> None:
    owner = f"requeue-{uuid.uuid4().hex[:12]}"
    claimed = BulkJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES) \
        .filter(Q(lease_owner="") | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=_stale_cutoff())) \
        .update(lease_owner=owner, heartbeat_at=_now())
    if claimed:
        _finish(BulkJob.objects.get(pk=job.pk), owner, cancelled=True)


def bulk_job_run(*, job_id: int) -> str:
    """Work the job's ledger to the end (or to a cancel); returns what happened."""
    owner = f"{uuid.uuid4().hex[:16]}"
    if not bulk_job_claim(job_id=job_id, owner=owner):
        job = BulkJob.objects.filter(pk=job_id).first()
        if job is not None and job.cancel_requested and job.status in ACTIVE_STATUSES:
            _finish_cancelled_unclaimed(job)
        return "not-claimed"
    job = BulkJob.objects.select_related("change_request").get(pk=job_id)
    plan = (job.change_request.plan or [{}])[0] if job.change_request else {}
    if plan.get("job") != job.pk or plan.get("hash") != job_fingerprint(job) or \
            job.change_request.status not in (RequestStatus.APPLYING,):
        return _finish(job, owner, error="The job's ids or targets no longer match what was approved; "
                                         "nothing was sent.")
    runner = _Runner(job, owner)
    runner.start_heartbeat()
    try:
        return _work_and_verify(runner, job, owner)
    finally:
        runner.stop_heartbeat()


def _work_and_verify(runner: "_Runner", job: BulkJob, owner: str) -> str:
    try:
        runner.work()
    except _Stop:
        pass
    except _Transient as error:
        return _finish(job, owner, error=f"The experiment service kept failing: {error}. "
                                         "Pending ids were not applied; undo or run a new job for them.")
    if runner.lease_lost:
        return "lease-lost"
    if runner.cancelled:
        return _finish(job, owner, cancelled=True)
    return _finish(job, owner)


HEARTBEAT_SECONDS = 1.0  # how often a working job renews its lease and learns of a cancel


def _batches(rows: list, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


class _Runner:
    def __init__(self, job: BulkJob, owner: str):
        self.job = job
        self.owner = owner
        self.cancelled = False
        self.lease_lost = False
        self._stop = threading.Event()
        self._done = threading.Event()
        self.client = gateway.get_client()
        self.retries = int(_setting("BULK_TRANSIENT_RETRIES", 5))
        self.job_ids = frozenset(job.ids)  # once: a 50,000-id list is not split again per variant

    # The lease is renewed by a thread of its own, once a HEARTBEAT_SECONDS, however long an
    # upstream call takes (the gateway may spend UPSTREAM_MAX_RETRY_SECONDS on one): a live
    # worker never looks stale, a killed one stops beating at once. The renewal is one UPDATE
    # that matches only while this worker holds the lease and nobody asked to cancel.
    def start_heartbeat(self) -> None:
        self._heart = threading.Thread(target=self._heartbeat, name=f"bulk-{self.job.pk}-heartbeat", daemon=True)
        self._heart.start()

    def stop_heartbeat(self) -> None:
        self._done.set()
        self._heart.join()

    def _heartbeat(self) -> None:
        try:
            while not self._done.wait(HEARTBEAT_SECONDS):
                alive = BulkJob.objects.filter(pk=self.job.pk, lease_owner=self.owner, cancel_requested=False) \
                    .update(heartbeat_at=_now())
                if alive:
                    continue
                row = BulkJob.objects.filter(pk=self.job.pk).values("lease_owner", "cancel_requested").first()
                if row and row["lease_owner"] == self.owner and row["cancel_requested"]:
                    self.cancelled = True
                else:
                    self.lease_lost = True
                self._stop.set()
                return
        finally:
            connection.close()

    def beat(self) -> None:
        """Called between upstream calls: stop here if the job was cancelled or taken over."""
        if self._stop.is_set():
            raise _Stop()

    def _targets_to_work(self) -> list[BulkTarget]:
        return list(self.job.targets.filter(finished_at__isnull=True).order_by("position"))

    def _parallel(self, function, targets: list[BulkTarget]) -> None:
        threads = max(1, int(_setting("BULK_WORKER_THREADS", 4)))
        if threads == 1 or len(targets) <= 1:
            for target in targets:
                function(target)
            return
        errors: list[BaseException] = []
        queue = iter(targets)
        queue_lock = threading.Lock()

        def drain() -> None:
            try:
                while not self._stop.is_set():
                    with queue_lock:
                        target = next(queue, None)
                    if target is None:
                        return
                    function(target)
            except BaseException as error:  # noqa: BLE001 - handed back to the calling thread
                self._stop.set()
                errors.append(error)
            finally:
                connection.close()

        workers = [threading.Thread(target=drain, name=f"bulk-{self.job.pk}-{n}") for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        for error in errors:
            if not isinstance(error, _Stop):
                raise error
        if errors:
            raise errors[0]

    def work(self) -> None:
        self._parallel(self._work_target, self._targets_to_work())

    def _with_retries(self, call):
        attempt = 0
        while True:
            try:
                return call()
            except gateway.BudgetExhausted as error:
                raise _Transient(error.message) from None
            except (gateway.RateLimited, gateway.UpstreamUnavailable, gateway.UpstreamTimeout) as error:
                attempt += 1
                if attempt > self.retries:
                    raise _Transient(error.message) from None
                logger.warning("bulk job %s: upstream failed (%s); trying again", self.job.pk, error.message)
                if self._stop.wait(min(10.0, 0.5 * 2 ** attempt)):
                    raise _Stop()

    def _work_target(self, target: BulkTarget) -> None:
        """Refresh, write and read back one variant, then close it (finished, verified, audited)
        in one transaction. A target left unfinished is simply worked again on resume."""
        correlation = f"bulk-{self.job.pk}-{target.position}"
        with gateway.correlation(correlation), gateway.recording() as calls:
            self.beat()
            rows = list(BulkJobItem.objects.filter(target=target, status__in=[ItemStatus.PENDING, ItemStatus.SKIPPED])
                        .values_list("id", "user_id", "action", "status"))
            verified, detail = None, {}
            try:
                if target.refreshed_at is None:
                    rows = self._refresh(target, rows)
                pending = [(pk, user_id, action) for pk, user_id, action, status in rows
                           if status == ItemStatus.PENDING]
                for action in (Action.REMOVE, Action.ADD):  # removals first: a replace never passes the cap
                    self._work_action(target, action, [(pk, u) for pk, u, a in pending if a == action])
                verified, detail = self._verify(target)
            except gateway.NotFound as error:
                BulkJobItem.objects.filter(target=target, status=ItemStatus.PENDING) \
                    .update(status=ItemStatus.FAILED, note=f"Not found upstream: {error.message}"[:300])
                verified, detail = False, {"error": error.message}
            with transaction.atomic():
                BulkTarget.objects.filter(pk=target.pk).update(finished_at=_now(), verified=verified,
                                                               verify_detail=detail)
                counts = dict(target.items.values_list("status").annotate(n=Count("id")).order_by())
                audit_record(action=actions.BULK_JOB_PROGRESSED, actor="system:bulk", bulk_job_id=self.job.pk,
                             experiment_id=target.experiment_id, experiment_key=target.experiment_key,
                             correlation_id=correlation, upstream_calls=calls,
                             detail={"variant": target.variant_key, "counts": counts, "verified": verified})

    def _work_action(self, target: BulkTarget, action: str, pending: list[tuple[int, str]]) -> None:
        size = add_chunk_size() if action == Action.ADD else BULK_DELETE_MAX
        for chunk in _batches(pending, size):
            self.beat()
            pks = [pk for pk, _ in chunk]
            user_ids = [user_id for _, user_id in chunk]
            if action == Action.ADD:
                send = lambda: self.client.add_inclusions(target.experiment_id, target.variant_key, user_ids)  # noqa: E731
            else:
                send = lambda: self.client.bulk_remove_inclusions(target.experiment_id, target.variant_key,  # noqa: E731
                                                                  user_ids)
            try:
                self._with_retries(send)
            except gateway.InvalidInput as error:
                BulkJobItem.objects.filter(pk__in=pks).update(status=ItemStatus.FAILED, note=error.message[:300])
                continue
            BulkJobItem.objects.filter(pk__in=pks, status=ItemStatus.PENDING).update(status=ItemStatus.APPLIED)

    def _refresh(self, target: BulkTarget, rows: list[tuple]) -> list[tuple]:
        """Re-read the variant before the first write: what changed since the preview is skipped
        (or un-skipped), a replace picks up ids that appeared since, and adds that would break the
        cap fail here instead of upstream. Returns the target's open rows as they now stand."""
        current = self._with_retries(lambda: self.client.list_inclusions(target.experiment_id, target.variant_key))
        present = set(current)
        changes: dict[tuple[str, str], list[int]] = {}
        updated = []
        for pk, user_id, action, status in rows:
            wanted = (ItemStatus.SKIPPED if user_id in present else ItemStatus.PENDING) if action == Action.ADD \
                else (ItemStatus.PENDING if user_id in present else ItemStatus.SKIPPED)
            if wanted != status:
                note = "" if wanted == ItemStatus.PENDING else \
                    ("already included" if action == Action.ADD else "not included")
                changes.setdefault((wanted, note), []).append(pk)
            updated.append((pk, user_id, action, wanted))
        # Before its first write a target's items are all in ``rows`` (pending or skipped).
        extra: list[str] = []
        if self.job.kind == Kind.REPLACE:  # ids that appeared since the preview go too
            known = {user_id for _, user_id, action, _ in rows if action == Action.REMOVE}
            extra = [u for u in current if u not in self.job_ids and u not in known]
        elif self.job.kind == Kind.SWEEP:  # so do swept ids added since the preview
            known = {user_id for _, user_id, _, _ in rows}
            extra = [u for u in current if u in self.job_ids and u not in known]
        adding = [row for row in updated if row[2] == Action.ADD and row[3] == ItemStatus.PENDING]
        removing = sum(1 for row in updated if row[2] == Action.REMOVE and row[3] == ItemStatus.PENDING) + len(extra)
        would_hold = len(present) - removing + len(adding)
        over_cap = bool(adding) and would_hold > INCLUSION_CAP
        with transaction.atomic():
            for (status, note), pks in changes.items():
                for batch in _batches(pks, DB_BATCH):
                    BulkJobItem.objects.filter(pk__in=batch).update(status=status, note=note)
            if extra:
                _bulk_insert((BulkJobItem(job=self.job, target=target, user_id=u, action=Action.REMOVE,
                                          note="appeared since the preview") for u in extra), BulkJobItem)
            if over_cap:
                for batch in _batches([row[0] for row in adding], DB_BATCH):
                    BulkJobItem.objects.filter(pk__in=batch).update(
                        status=ItemStatus.FAILED,
                        note=f"would break the {INCLUSION_CAP:,} cap: the variant holds {len(present):,} now, "
                             f"this job adds {len(adding):,} and removes {removing:,}")
            BulkTarget.objects.filter(pk=target.pk).update(refreshed_at=_now())
        if extra or over_cap:
            return list(BulkJobItem.objects.filter(target=target, status__in=[ItemStatus.PENDING, ItemStatus.SKIPPED])
                        .values_list("id", "user_id", "action", "status"))
        return updated

    def _verify(self, target: BulkTarget) -> tuple[bool | None, dict]:
        """Read the variant back: applied adds must be there, applied removals gone, and a replace
        must hold exactly its list. (None: the job applied nothing here and checks nothing.)"""
        applied = list(target.items.filter(status=ItemStatus.APPLIED).values_list("user_id", "action"))
        if not applied and self.job.kind != Kind.REPLACE:
            return None, {}
        self.beat()
        current = self._with_retries(lambda: self.client.list_inclusions(target.experiment_id, target.variant_key))
        present = set(current)
        missing = [u for u, action in applied if action == Action.ADD and u not in present]
        lingering = [u for u, action in applied if action == Action.REMOVE and u in present]
        if self.job.kind == Kind.SWEEP:  # none of the swept ids may be left, applied here or not
            lingering = [u for u in current if u in self.job_ids]
        detail = {"holds": len(current), "missing": len(missing), "lingering": len(lingering),
                  "sample_missing": missing[:SAMPLE], "sample_lingering": lingering[:SAMPLE]}
        ok = not (missing or lingering)
        if self.job.kind == Kind.REPLACE:
            wanted = self.job_ids
            failed_adds = set(target.items.filter(status=ItemStatus.FAILED, action=Action.ADD)
                              .values_list("user_id", flat=True))
            unexpected = [u for u in current if u not in wanted]
            lacking = [u for u in wanted - present if u not in failed_adds]
            detail.update(unexpected=len(unexpected), lacking=len(lacking), sample_unexpected=unexpected[:SAMPLE])
            ok = ok and not (unexpected or lacking)
        return ok, detail


def _finish(job: BulkJob, owner: str, *, cancelled: bool = False, error: str = "") -> str:
    """Close the job and its change request in one transaction (only while holding the lease)."""
    from experiments_app.change_requests import change_request_mark_applied, change_request_mark_failed

    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if job.lease_owner != owner or job.status not in ACTIVE_STATUSES:
            return "lease-lost"
        counts = progress_counts(job)
        targets = job.targets.exclude(verified__isnull=True)
        failed_targets = list(targets.filter(verified=False).values_list("experiment_key", "variant_key",
                                                                          "verify_detail")[:SAMPLE])
        verified = None if (cancelled or error) else not failed_targets
        job.verified = verified
        job.verification = {"targets_checked": targets.count(), "targets_failed": len(failed_targets),
                            "failures": [{"target": f"{k}/{v}", **d} for k, v, d in failed_targets]}
        if cancelled:
            job.status = JobStatus.CANCELLED
            job.error = _cancel_note(job)
        elif error:
            job.status = JobStatus.FAILED
            job.error = error
        elif counts["failed"] or not verified:
            job.status = JobStatus.FAILED
            job.error = "; ".join(filter(None, [
                f"{counts['failed']:,} ids failed" if counts["failed"] else "",
                f"verification failed on {len(failed_targets)} variant(s)" if failed_targets else ""]))
        else:
            job.status = JobStatus.SUCCEEDED
        job.finished_at = _now()
        job.lease_owner = ""
        job.save(update_fields=["status", "error", "verified", "verification", "finished_at", "lease_owner",
                                "updated_at"])
        result = {"bulk_job": job.pk, "status": job.status, "counts": counts, "verified": verified,
                  "verification": job.verification}
        change_request = job.change_request
        if change_request is not None and change_request.status == RequestStatus.APPLYING:
            if job.status == JobStatus.SUCCEEDED:
                change_request_mark_applied(change_request=change_request, result=result)
            else:
                change_request_mark_failed(change_request=change_request, error=job.error, result=result)
        correlation = change_request.correlation_id if change_request else ""
        audit_record(action=actions.BULK_JOB_CANCELLED if cancelled else actions.BULK_JOB_FINISHED,
                     actor="system:bulk", bulk_job_id=job.pk, correlation_id=correlation,
                     reason=job.error, detail=result)
        if job.undo_of_id and job.status == JobStatus.SUCCEEDED:
            audit_record(action=actions.BULK_JOB_UNDONE, actor=job.requester, bulk_job_id=job.undo_of_id,
                         correlation_id=correlation, detail={"undo_job": job.pk, "counts": counts})
    return job.status


def progress_counts(job: BulkJob) -> dict:
    return progress_counts_many([job.pk])[job.pk]


def progress_counts_many(job_ids: list[int]) -> dict[int, dict]:
    """Ledger counts by status (and total, done) for several jobs in one grouped query."""
    rows: dict[int, dict] = {pk: {} for pk in job_ids}
    grouped = BulkJobItem.objects.filter(job_id__in=job_ids).values_list("job_id", "status") \
        .annotate(n=Count("id")).order_by()
    for job_id, status, n in grouped:
        rows[job_id][status] = n
    result = {}
    for job_id, by_status in rows.items():
        counts = {status: int(by_status.get(status, 0)) for status in ItemStatus.values}
        counts["total"] = sum(counts[s] for s in ItemStatus.values)
        counts["done"] = counts["total"] - counts["pending"]
        result[job_id] = counts
    return result
