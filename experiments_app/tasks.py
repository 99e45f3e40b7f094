"""Celery tasks: they take ids, call a service, and are safe to run twice."""

from celery import shared_task

from experiments_app import change_requests


@shared_task(acks_late=True)
def apply_change_request(change_request_id: int) -> None:
    change_requests.change_request_apply(change_request_id=change_request_id)


@shared_task
def expire_change_requests() -> int:
    return change_requests.change_requests_expire()
