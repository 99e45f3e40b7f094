"""Celery tasks for bulk jobs: they take ids, call a service, and are safe to run twice (the
job's lease lets only one worker work a job at a time)."""

from celery import shared_task

from experiments_app.bulk import services


@shared_task(acks_late=True)
def run_bulk_job(job_id: int) -> str:
    return services.bulk_job_run(job_id=job_id)


@shared_task(acks_late=True)
def build_bulk_preview(job_id: int) -> str:
    return services.bulk_job_build_preview(job_id=job_id)


@shared_task
def requeue_stale_bulk_jobs() -> list[int]:
    return services.bulk_jobs_requeue_stale()


@shared_task
def discard_old_bulk_drafts() -> int:
    return services.bulk_drafts_discard()
