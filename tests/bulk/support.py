"""Helpers for arranging upstream state and driving jobs through review in bulk tests."""

import time
import uuid

from experiments_app.bulk import services
from experiments_app.bulk.models import FINISHED_STATUSES, BulkJob, JobStatus
from experiments_app.change_requests import change_request_approve
from experiments_app.models import Status as RequestStatus


def new_experiment(client, *, prefix: str = "bulk", tags: list[str] | None = None) -> str:
    key = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = client.create_experiment(key=key, name=key)
    if tags:
        client.update_experiment(created.id, {"tags": tags})
    return created.id


def include(client, experiment_id: str, variant_key: str, ids: list[str]) -> None:
    for start in range(0, len(ids), 1000):
        client.add_inclusions(experiment_id, variant_key, ids[start:start + 1000])


def ids(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix}-{n:05d}" for n in range(start, start + count)]


def submit_and_approve(job: BulkJob, *, requester, approvers=()) -> BulkJob:
    change_request = services.bulk_job_submit(actor=requester, job=job)
    for approver in approvers:
        change_request.refresh_from_db()
        if change_request.status == RequestStatus.PENDING:
            change_request_approve(approver=approver, change_request=change_request)
    job.refresh_from_db()
    return job


def wait_finished(job: BulkJob, timeout: float = 60.0) -> BulkJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in FINISHED_STATUSES:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job #{job.pk} still {job.status} after {timeout}s")


def wait_previewed(job: BulkJob, timeout: float = 30.0) -> BulkJob:
    """A sweep or undo drafted from a page is read by a worker: wait until it is a draft."""
    wait_until(lambda: BulkJob.objects.filter(pk=job.pk).exclude(status=JobStatus.PREVIEWING).exists(),
               timeout=timeout, what=f"job #{job.pk}'s preview")
    job.refresh_from_db()
    return job


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
