"""Writing, chaining, verifying and delivering audit entries, and finding upstream drift.

    from experiments_app.audit import actions
    from experiments_app.audit.services import audit_record

    with transaction.atomic():
        request.state = "approved"; request.save()
        audit_record(action=actions.CHANGE_REQUEST_APPROVED, actor=user, experiment_id=..., reason=...)

``audit_record`` only inserts a row (the outbox) in the caller's transaction and, once that
commits, asks Celery to process the outbox. Processing (``audit_outbox_process``) gives each
row its place in the chain under a lock on the chain head: sequence n+1, the SHA-256 of its
content and the SHA-256 of (previous chain hash + content hash). A broker outage only delays
that step: the beat schedule runs it again every minute, and it takes whatever is unchained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from experiments_app import gateway
from experiments_app.audit import actions
from experiments_app.audit.models import (
    CONTENT_FIELDS,
    AuditChainHead,
    AuditDelivery,
    AuditEntry,
    UpstreamWatermark,
)

logger = logging.getLogger("experiments_app.audit")

GENESIS_HASH = "0" * 64
PROCESS_BATCH = 500
SYSTEM = "system"
CALL_FIELDS = ("method", "path", "status", "latency_ms", "attempt", "correlation_id", "error")


# --- Writing ---------------------------------------------------------------------------------

def audit_record(*, action: str, actor: Any = None, experiment_id: str | None = None, experiment_key: str = "",
                 change_request_id: int | None = None, bulk_job_id: int | None = None,
                 before: dict | None = None, after: dict | None = None, reason: str = "",
                 correlation_id: str = "", upstream_calls: Iterable[Any] | None = None,
                 upstream_version_before: int | None = None, upstream_version_after: int | None = None,
                 detail: dict | None = None) -> AuditEntry:
    """Insert one audit entry in the caller's transaction; chain it after commit.

    ``actor`` is a User, None (the system) or a label such as "system:drift". ``upstream_calls``
    takes gateway CallRecords or dicts. Without a ``correlation_id`` the gateway's current one
    (``gateway.correlation(...)``) is used. Never raises for a broker outage.
    """
    if action not in actions.LABELS:
        raise ValueError(f"Unknown audit action {action!r}: use a constant from experiments_app.audit.actions")
    actor_label, actor_user_id = _actor(actor)
    entry = AuditEntry(
        created_at=timezone.now(),
        action=action,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        experiment_id=experiment_id or "",
        experiment_key=experiment_key or "",
        change_request_id=change_request_id,
        bulk_job_id=bulk_job_id,
        before=_plain(before),
        after=_plain(after),
        reason=reason or "",
        correlation_id=correlation_id or gateway.current_correlation_id() or "",
        upstream_calls=[_call_dict(call) for call in upstream_calls or ()],
        upstream_version_before=upstream_version_before,
        upstream_version_after=upstream_version_after,
        detail=_plain(detail) or {},
    )
    entry.seal = entry_seal(entry)
    entry.save(force_insert=True)
    transaction.on_commit(audit_processing_enqueue)
    return entry


BROKER_PAUSE_SECONDS = 30.0
_broker_down_until = 0.0


_acting_as: ContextVar[Any] = ContextVar("audit_acting_as", default=None)


@contextmanager
def audit_acting_as(actor: Any) -> Iterator[None]:
    """Name the actor of changes recorded by signal receivers inside the block (role changes:
    ``with audit_acting_as(request.user): user.groups.set(...)``)."""
    token = _acting_as.set(actor)
    try:
        yield
    finally:
        _acting_as.reset(token)


def audit_current_actor(default: Any = None) -> Any:
    return _acting_as.get() or default


def audit_processing_enqueue() -> None:
    """Ask a worker to process the outbox; with the broker down, log and leave it to beat.

    Reaching a dead Redis broker takes seconds (the client retries); after one failure this
    process stops trying for BROKER_PAUSE_SECONDS, so an outage costs one slow commit, not all.
    """
    global _broker_down_until
    from experiments_app.audit.tasks import process_audit_outbox

    if time.monotonic() < _broker_down_until:
        return
    try:
        process_audit_outbox.apply_async(retry=False)
    except Exception as error:  # any broker failure: the periodic run picks the entries up
        _broker_down_until = time.monotonic() + BROKER_PAUSE_SECONDS
        logger.warning("audit outbox: could not queue processing (%s: %s); the periodic run will",
                       type(error).__name__, error)


def _actor(actor: Any) -> tuple[str, int | None]:
    if actor is None:
        return SYSTEM, None
    if isinstance(actor, str):
        return actor, None
    if getattr(actor, "is_authenticated", False):
        return actor.get_username(), actor.pk
    return SYSTEM, None


def _plain(value: Any) -> Any:
    """JSON-safe (dates and decimals as strings), exactly as the database will give it back."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _call_dict(call: Any) -> dict:
    raw = dataclasses.asdict(call) if dataclasses.is_dataclass(call) else dict(call)
    record = {name: raw.get(name) for name in CALL_FIELDS if name in raw}
    if isinstance(record.get("latency_ms"), float):
        record["latency_ms"] = round(record["latency_ms"], 1)
    return _plain(record)


# --- Hashing ---------------------------------------------------------------------------------

def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_content(entry: AuditEntry) -> dict:
    content = {name: getattr(entry, name) for name in CONTENT_FIELDS}
    content["created_at"] = entry.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return content


def entry_seal(entry: AuditEntry) -> str:
    """An HMAC of the entry's content under the portal's secret: only the portal can make one."""
    key = getattr(settings, "AUDIT_SEAL_KEY", "") or settings.SECRET_KEY
    return salted_hmac("experiments_app.audit.seal", _canonical(entry_content(entry)), secret=key,
                       algorithm="sha256").hexdigest()


def entry_content_hash(entry: AuditEntry, sequence: int) -> str:
    data = {**entry_content(entry), "id": entry.id, "seal": entry.seal, "sequence": sequence}
    return hashlib.sha256(_canonical(data)).hexdigest()


def link_hash(previous_chain_hash: str, content_hash: str) -> str:
    return hashlib.sha256((previous_chain_hash + content_hash).encode()).hexdigest()


# --- Processing the outbox -------------------------------------------------------------------

def audit_outbox_process(*, batch_size: int = PROCESS_BATCH) -> int:
    """Chain every unprocessed entry, oldest id first; returns how many were chained.

    Safe to run concurrently and repeatedly: the chain head row is locked for each batch and
    only rows still without a sequence are taken, so no entry is chained twice.
    """
    total = 0
    while True:
        chained = _process_batch(batch_size)
        total += len(chained)
        if chained and webhook_configured():
            transaction.on_commit(lambda ids=chained: _deliveries_enqueue(ids))
        if len(chained) < batch_size:
            return total


@transaction.atomic
def _process_batch(batch_size: int) -> list[int]:
    AuditChainHead.objects.get_or_create(pk=1)
    head = AuditChainHead.objects.select_for_update().get(pk=1)
    entries = list(AuditEntry.objects.filter(sequence__isnull=True).order_by("id")[:batch_size])
    if not entries:
        return []
    now = timezone.now()
    for entry in entries:
        if not hmac.compare_digest(entry.seal, entry_seal(entry)):
            logger.error("audit outbox: entry %s does not carry the portal's seal; chaining it anyway so that "
                         "verify_audit_chain reports it", entry.id)
        sequence = head.last_sequence + 1
        entry.sequence = sequence
        entry.content_hash = entry_content_hash(entry, sequence)
        entry.chain_hash = link_hash(head.last_hash, entry.content_hash)
        entry.processed_at = now
        head.last_sequence, head.last_hash = sequence, entry.chain_hash
    AuditEntry.objects.bulk_update(entries, ["sequence", "content_hash", "chain_hash", "processed_at"])
    head.save()
    if webhook_configured():
        AuditDelivery.objects.bulk_create([AuditDelivery(entry=e) for e in entries], ignore_conflicts=True)
    return [e.id for e in entries]


# --- Verifying the chain ---------------------------------------------------------------------

@dataclass(frozen=True)
class ChainProblem:
    sequence: int | None
    entry_id: int | None
    message: str


@dataclass(frozen=True)
class ChainReport:
    checked: int
    unprocessed: int
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def audit_chain_verify() -> ChainReport:
    """Walk the chain in sequence order and report the first broken link, if any."""
    head = AuditChainHead.objects.filter(pk=1).first()
    previous_hash, expected, checked = GENESIS_HASH, 1, 0
    chained = AuditEntry.objects.filter(sequence__isnull=False).order_by("sequence")
    for entry in chained.iterator(chunk_size=2000):
        problem = _link_problem(entry, expected, previous_hash)
        if problem:
            return ChainReport(checked, 0, problem)
        previous_hash, expected, checked = entry.chain_hash, expected + 1, checked + 1
    last = expected - 1
    if head and (head.last_sequence, head.last_hash) != (last, previous_hash):
        if head.last_sequence > last:
            message = f"entries {last + 1}–{head.last_sequence} were removed from the end of the chain"
        else:
            message = f"the chain head (sequence {head.last_sequence}) does not match its last entry ({last})"
        return ChainReport(checked, 0, ChainProblem(last + 1, None, message))
    if not head and checked:
        return ChainReport(checked, 0, ChainProblem(None, None, "the chain head is missing"))
    unprocessed = 0
    for entry in AuditEntry.objects.filter(sequence__isnull=True).order_by("id").iterator(chunk_size=2000):
        unprocessed += 1
        if entry.content_hash or entry.chain_hash or not hmac.compare_digest(entry.seal, entry_seal(entry)):
            return ChainReport(checked, unprocessed, ChainProblem(
                None, entry.id, f"unchained entry #{entry.id} was not written by the portal (bad seal)"))
    return ChainReport(checked, unprocessed, None)


def _link_problem(entry: AuditEntry, expected: int, previous_hash: str) -> ChainProblem | None:
    if entry.sequence != expected:
        what = "was" if entry.sequence == expected + 1 else "were"
        span = f"{expected}" if entry.sequence == expected + 1 else f"{expected}–{entry.sequence - 1}"
        return ChainProblem(expected, None, f"entry sequence {span} {what} removed (next is #{entry.id} "
                                            f"at sequence {entry.sequence})")
    if not hmac.compare_digest(entry.seal, entry_seal(entry)):
        return ChainProblem(expected, entry.id, f"entry #{entry.id} at sequence {expected} was changed or "
                                                "inserted out of band (its seal does not match its content)")
    if entry.content_hash != entry_content_hash(entry, expected):
        return ChainProblem(expected, entry.id, f"entry #{entry.id} at sequence {expected} was changed "
                                                "(its content hash does not match)")
    if entry.chain_hash != link_hash(previous_hash, entry.content_hash):
        return ChainProblem(expected, entry.id, f"entry #{entry.id} at sequence {expected} does not link to "
                                                "its predecessor")
    return None


# --- Webhook sink ----------------------------------------------------------------------------

class DeliveryFailed(Exception):
    pass


def webhook_configured() -> bool:
    return bool(getattr(settings, "AUDIT_WEBHOOK_URL", ""))


def _deliveries_enqueue(entry_ids: list[int]) -> None:
    from experiments_app.audit.tasks import deliver_audit_entry

    for delivery_id in AuditDelivery.objects.filter(entry_id__in=entry_ids).values_list("id", flat=True):
        try:
            deliver_audit_entry.apply_async((delivery_id,), retry=False)
        except Exception as error:
            logger.warning("audit webhook: could not queue delivery %s (%s); the periodic run will",
                           delivery_id, type(error).__name__)
            return


def audit_deliveries_stale(*, older_than: timedelta = timedelta(minutes=15)) -> list[int]:
    """Pending deliveries nobody has touched for longer than the longest retry wait (their task
    was lost to a broker outage). Receivers should still ignore a sequence number seen before."""
    cutoff = timezone.now() - older_than
    return list(AuditDelivery.objects.filter(status=AuditDelivery.PENDING, updated_at__lt=cutoff)
                .order_by("id").values_list("id", flat=True)[:1000])


def webhook_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def audit_delivery_send(*, delivery_id: int, final_attempt: bool = False) -> AuditDelivery:
    """POST one entry to the webhook, signed; raise DeliveryFailed (for a retry) when it fails."""
    delivery = AuditDelivery.objects.select_related("entry").get(pk=delivery_id)
    if delivery.status != AuditDelivery.PENDING:
        return delivery
    body = _canonical(entry_record(delivery.entry))
    headers = {"Content-Type": "application/json", "X-Portal-Audit-Sequence": str(delivery.entry.sequence)}
    secret = getattr(settings, "AUDIT_WEBHOOK_SECRET", "")
    if secret:
        headers["X-Portal-Signature"] = webhook_signature(body, secret)
    delivery.attempts += 1
    try:
        response = requests.post(settings.AUDIT_WEBHOOK_URL, data=body, headers=headers,
                                 timeout=(3.05, getattr(settings, "AUDIT_WEBHOOK_TIMEOUT", 10.0)))
        delivery.response_status = response.status_code
        error = "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    if not error:
        delivery.status, delivery.delivered_at, delivery.last_error = AuditDelivery.DELIVERED, timezone.now(), ""
    else:
        delivery.last_error = error
        if final_attempt:
            delivery.status = AuditDelivery.FAILED
    delivery.save()
    if error and not final_attempt:
        raise DeliveryFailed(error)
    return delivery


# --- Records for export and sinks ------------------------------------------------------------

EXPORT_FIELDS = (
    "id", "sequence", "created_at", "action", "actor_label", "actor_user_id", "experiment_id", "experiment_key",
    "change_request_id", "bulk_job_id", "reason", "correlation_id", "upstream_version_before",
    "upstream_version_after", "before", "after", "upstream_calls", "detail", "content_hash", "chain_hash",
)


def entry_record(entry: AuditEntry | dict) -> dict:
    """An entry as exported and sent to sinks (from a model instance or a ``values()`` row)."""
    record = dict(entry) if isinstance(entry, dict) else {name: getattr(entry, name) for name in EXPORT_FIELDS}
    record["created_at"] = record["created_at"].astimezone(UTC).isoformat(timespec="microseconds")
    return record


# --- Drift: changes made outside the portal --------------------------------------------------

DRIFT_ACTOR_PREFIX = "upstream:"


@dataclass
class DriftReport:
    experiments: int = 0
    checked: int = 0
    external_changes: int = 0
    baselined: int = 0
    stopped_for_budget: bool = False


def audit_drift_detect() -> DriftReport:
    """Record every upstream version the portal did not make as an 'external change' entry.

    The first run ever only remembers each experiment's newest version (history before the
    portal is not "drift"); later, an experiment never seen before is checked from version 1.

    The upstream allows 100,000 requests a day, so versions are read only for experiments whose
    listed configuration changed since the last look, and for every experiment once each
    AUDIT_DRIFT_SWEEP_SECONDS (inclusion-only changes do not show in the listing); the run stops
    while fewer than AUDIT_DRIFT_BUDGET_RESERVE requests are left today for people's own work.
    """
    report = DriftReport()
    client = gateway.get_client()
    first_run = not UpstreamWatermark.objects.exists()
    watermarks = {w.experiment_id: w for w in UpstreamWatermark.objects.all()}
    swept_since = timezone.now() - timedelta(seconds=getattr(settings, "AUDIT_DRIFT_SWEEP_SECONDS", 3600))
    reserve = getattr(settings, "AUDIT_DRIFT_BUDGET_RESERVE", 10_000)
    with gateway.correlation(f"drift-{timezone.now():%Y%m%dT%H%M%S}"):
        for experiment in client.iter_experiments():
            report.experiments += 1
            fingerprint = hashlib.sha256(_canonical(experiment.raw)).hexdigest()
            known = watermarks.get(experiment.id)
            if known and known.fingerprint == fingerprint and known.checked_at > swept_since:
                continue
            if reserve and client.budget_remaining() < reserve:
                report.stopped_for_budget = True
                logger.warning("drift check stopped: fewer than %s upstream requests left today", reserve)
                break
            report.checked += 1
            versions = sorted(client.list_versions(experiment.id), key=lambda v: v.version)
            if first_run:
                UpstreamWatermark.objects.update_or_create(experiment_id=experiment.id, defaults={
                    "experiment_key": experiment.key, "fingerprint": fingerprint,
                    "last_version": versions[-1].version if versions else 0})
                report.baselined += 1
                continue
            report.external_changes += _experiment_drift_record(experiment, versions, fingerprint)
    return report


def _settled(version: gateway.Version, grace: timedelta) -> bool:
    """A version younger than the grace period may be the portal's own push whose audit entry
    has not committed yet: look at it on the next run."""
    if not grace or not version.created_at:
        return True
    try:
        created = datetime.fromisoformat(version.created_at)
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created <= timezone.now() - grace


@transaction.atomic
def _experiment_drift_record(experiment: gateway.Experiment, versions: list[gateway.Version],
                             fingerprint: str) -> int:
    UpstreamWatermark.objects.get_or_create(experiment_id=experiment.id,
                                            defaults={"experiment_key": experiment.key, "last_version": 0})
    watermark = UpstreamWatermark.objects.select_for_update().get(pk=experiment.id)
    grace = timedelta(seconds=getattr(settings, "AUDIT_DRIFT_GRACE_SECONDS", 120))
    portal_made = portal_versions(experiment.id, since=watermark.last_version)
    # Pushes that record no version numbers (bulk inclusion batches) are known by their author:
    # the upstream's createdBy for the portal's own API key.
    portal_names = set(getattr(settings, "AUDIT_PORTAL_CREATED_BY", []))
    recorded = 0
    previous: gateway.Version | None = None
    settled = True
    for version in versions:
        if version.version > watermark.last_version:
            if not _settled(version, grace):
                settled = False
                break
            if version.version not in portal_made and (version.created_by or "") not in portal_names:
                _external_change_record(experiment, previous, version)
                recorded += 1
            watermark.last_version = version.version
        previous = version
    watermark.experiment_key = experiment.key
    watermark.fingerprint = fingerprint if settled else ""  # unsettled: look again next run
    watermark.save()
    return recorded


# Entries that record the portal's own pushes (a conflict entry's versions are someone else's).
PUSH_ACTIONS = (
    actions.CHANGE_REQUEST_APPLIED, actions.CHANGE_REQUEST_FAILED, actions.BULK_JOB_PROGRESSED,
    actions.BULK_JOB_FINISHED, actions.BULK_JOB_CANCELLED, actions.BULK_JOB_UNDONE,
)


def portal_versions(experiment_id: str, *, since: int = 0) -> set[int]:
    """Upstream version numbers the portal's own pushes produced: each entry that records a
    push claims the versions after upstream_version_before up to upstream_version_after."""
    made: set[int] = set()
    pairs = (AuditEntry.objects.filter(experiment_id=experiment_id, upstream_version_after__gt=since,
                                       action__in=PUSH_ACTIONS)
             .values_list("upstream_version_before", "upstream_version_after"))
    for before, after in pairs:
        start = before + 1 if before is not None and before < after else after
        made.update(range(start, after + 1))
    return made


def _external_change_record(experiment: gateway.Experiment, previous: gateway.Version | None,
                            version: gateway.Version) -> AuditEntry:
    old = previous.flag_config if previous else {}
    new = version.flag_config
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return audit_record(
        action=actions.EXTERNAL_CHANGE,
        actor=DRIFT_ACTOR_PREFIX + (version.created_by or "unknown"),
        experiment_id=experiment.id,
        experiment_key=experiment.key,
        before={k: old[k] for k in changed if k in old},
        after={k: new[k] for k in changed if k in new},
        reason="Changed directly in the upstream, not through the portal"
        if previous else "Created directly in the upstream, not through the portal",
        upstream_version_before=previous.version if previous else None,
        upstream_version_after=version.version,
        detail={"createdBy": version.created_by, "createdAt": version.created_at, "version": version.version,
                "changedFields": changed},
    )

