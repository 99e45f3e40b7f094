"""Reading the audit history: filters, keyset pages (newest first) and exports."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404

from experiments_app import readable
from experiments_app.audit.models import AuditEntry

PAGE_SIZE = 50
EXPORT_CHUNK = 2000


@dataclass(frozen=True)
class AuditFilters:
    experiment: str = ""  # an experiment's id or key
    actor: str = ""
    action: str = ""
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    q: str = ""
    correlation: str = ""

    @property
    def active(self) -> bool:
        return any((self.experiment, self.actor, self.action, self.date_from, self.date_to, self.q, self.correlation))


@dataclass
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None


def audit_entries(filters: AuditFilters) -> QuerySet[AuditEntry]:
    """Every entry matching `filters`, newest first."""
    entries = AuditEntry.objects.all()
    if filters.experiment:
        # One indexed column, not an OR of two (which makes PostgreSQL walk the whole time index
        # for a rarely changed experiment): an id when entries carry it as an id, else a key.
        by_id = AuditEntry.objects.filter(experiment_id=filters.experiment).exists()
        entries = entries.filter(**{"experiment_id" if by_id else "experiment_key": filters.experiment})
    if filters.actor:
        entries = entries.filter(actor_label=filters.actor)
    if filters.action:
        entries = entries.filter(action=filters.action)
    if filters.correlation:
        entries = entries.filter(correlation_id=filters.correlation)
    if filters.date_from:
        entries = entries.filter(created_at__gte=datetime.combine(filters.date_from, time.min, UTC))
    if filters.date_to:
        entries = entries.filter(created_at__lt=datetime.combine(filters.date_to + timedelta(days=1), time.min, UTC))
    if filters.q:
        entries = entries.alias(detail_text=Cast("detail", TextField())).filter(
            Q(reason__icontains=filters.q) | Q(experiment_key__icontains=filters.q)
            | Q(detail_text__icontains=filters.q))
    return entries.order_by("-created_at", "-id")


def encode_cursor(entry: AuditEntry) -> str:
    raw = f"{entry.created_at.astimezone(UTC).isoformat(timespec='microseconds')}|{entry.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, entry_id = raw.partition("|")
        return datetime.fromisoformat(stamp), int(entry_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def audit_page(*, filters: AuditFilters, cursor: str | None = None, page_size: int | None = None) -> AuditPage:
    """One page of entries after `cursor` (keyset on created_at, id: no OFFSET, however deep)."""
    page_size = page_size or PAGE_SIZE
    entries = audit_entries(filters)
    position = decode_cursor(cursor) if cursor else None
    if position:
        stamp, entry_id = position
        entries = entries.filter(created_at__lte=stamp).filter(Q(created_at__lt=stamp) | Q(id__lt=entry_id))
    rows = list(entries[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    return AuditPage(rows, encode_cursor(rows[-1]) if more and rows else None)


def audit_entry_get(entry_id: int) -> AuditEntry:
    return get_object_or_404(AuditEntry.objects.select_related("delivery"), pk=entry_id)


def audit_entry_diff(entry: AuditEntry) -> list[readable.DiffRow]:
    before = entry.before if isinstance(entry.before, dict) else {}
    after = entry.after if isinstance(entry.after, dict) else {}
    if not before and not after:
        return []
    return readable.config_diff(before, after)


def audit_correlated(entry: AuditEntry, *, limit: int = 50) -> list[AuditEntry]:
    """The other entries sharing this entry's correlation id (the request, approvals, the apply)."""
    if not entry.correlation_id:
        return []
    return list(AuditEntry.objects.filter(correlation_id=entry.correlation_id).exclude(pk=entry.pk)
                .order_by("created_at", "id")[:limit])


def audit_export(filters: AuditFilters) -> Iterator[dict]:
    """Every matching entry as a dict of EXPORT_FIELDS, streamed from the database in chunks
    (flat memory; plain rows rather than model instances, for speed)."""
    from experiments_app.audit.services import EXPORT_FIELDS

    return audit_entries(filters).values(*EXPORT_FIELDS).iterator(chunk_size=EXPORT_CHUNK)


def experiment_activity(experiment_id: str, *, limit: int = 25) -> AuditPage:
    return audit_page(filters=AuditFilters(experiment=experiment_id), page_size=limit)
