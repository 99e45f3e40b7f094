"""Reads for bulk-job pages: lists, progress figures, the ledger report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from experiments_app.bulk.models import BulkJob, BulkJobItem, BulkTarget, ItemStatus, JobStatus
from experiments_app.bulk.services import progress_counts, progress_counts_many
from experiments_app.models import Status as RequestStatus

def bulk_job_list(*, mine_of=None, status: str = "") -> QuerySet[BulkJob]:
    jobs = BulkJob.objects.select_related("requester", "change_request").order_by("-created_at", "-id")
    if mine_of is not None:
        jobs = jobs.filter(requester=mine_of)
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def bulk_job_get(job_id: int) -> BulkJob:
    return BulkJob.objects.select_related("requester", "change_request", "undo_of", "cancelled_by").get(pk=job_id)


def status_label(job: BulkJob) -> str:
    """The job's status as people read it (an approved job waits a moment for its worker)."""
    if job.status == JobStatus.REVIEW and job.change_request_id \
            and job.change_request.status in (RequestStatus.APPROVED, RequestStatus.APPLYING):
        return "Approved, starting"
    return job.get_status_display()


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    applied: int
    skipped: int
    failed: int
    pending: int
    percent: int
    rate: float | None  # ids applied or failed per second since the start
    eta_seconds: int | None
    finished: bool


def bulk_jobs_progress(jobs: list[BulkJob]) -> list[Progress]:
    """Progress of a page of jobs: one query for all their ledgers."""
    counts = progress_counts_many([job.pk for job in jobs])
    return [bulk_job_progress(job, counts[job.pk]) for job in jobs]


def bulk_job_progress(job: BulkJob, counts: dict | None = None) -> Progress:
    counts = progress_counts(job) if counts is None else counts
    total = counts["total"]
    percent = 100 if job.status == JobStatus.SUCCEEDED else (int(100 * counts["done"] / total) if total else 0)
    rate = eta = None
    worked = counts["applied"] + counts["failed"]
    if job.started_at and worked:
        end = job.finished_at or timezone.now()
        elapsed = max((end - job.started_at).total_seconds(), 0.001)
        rate = worked / elapsed
        if counts["pending"] and not job.is_finished:
            eta = int(counts["pending"] / rate) + 1
    return Progress(total=total, done=counts["done"], applied=counts["applied"], skipped=counts["skipped"],
                    failed=counts["failed"], pending=counts["pending"], percent=percent, rate=rate,
                    eta_seconds=eta, finished=job.is_finished)


TARGETS_SHOWN = 50


@dataclass(frozen=True)
class TargetsView:
    total: int
    done: int
    verified: int
    unverified: int
    rows: list[BulkTarget]  # failed verification first, then open ones, then done; each with its counts


def bulk_job_targets(job: BulkJob, limit: int = TARGETS_SHOWN) -> TargetsView:
    """The variants of a job as a page watching it wants them: what went wrong and what is being
    worked come first; each row carries its ledger counts (one grouped query for the page)."""
    targets = job.targets.all()
    summary = targets.aggregate(n_total=Count("id"), n_done=Count("id", filter=Q(finished_at__isnull=False)),
                                n_verified=Count("id", filter=Q(verified=True)),
                                n_unverified=Count("id", filter=Q(verified=False)))
    rank = Case(When(verified=False, then=Value(0)), When(finished_at__isnull=True, then=Value(1)),
                default=Value(2), output_field=IntegerField())
    rows = list(targets.annotate(
        rank=rank,
        applied=Count("items", filter=Q(items__status=ItemStatus.APPLIED)),
        pending=Count("items", filter=Q(items__status=ItemStatus.PENDING)),
        failed=Count("items", filter=Q(items__status=ItemStatus.FAILED)),
    ).order_by("rank", "position")[:limit])
    return TargetsView(rows=rows, **{name.removeprefix("n_"): value for name, value in summary.items()})


def bulk_job_failed_items(job: BulkJob, limit: int = 20) -> list[BulkJobItem]:
    return list(job.items.filter(status=ItemStatus.FAILED).select_related("target").order_by("id")[:limit])


REPORT_HEADER = ["experiment_id", "experiment_key", "variant", "user_id", "action", "status", "note"]


def bulk_job_report_rows(job: BulkJob) -> Iterator[str]:
    """The ledger as CSV lines, streamed in id order (a 50,000-line ledger never sits in memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(row) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield line(REPORT_HEADER)
    rows = job.items.order_by("id").values_list("target__experiment_id", "target__experiment_key",
                                                "target__variant_key", "user_id", "action", "status", "note")
    for row in rows.iterator(chunk_size=2000):
        yield line([_safe(value) for value in row])


def _safe(value: str) -> str:
    # A cell starting with = + - @ would run as a formula in a spreadsheet.
    return "'" + value if value and value[0] in "=+-@\t\r" else value
