"""`make run` leaves a fresh demo something to review, once, and never sends demo data upstream."""

import io
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from experiments_app.bulk.models import BulkJob, ItemStatus, JobStatus
from experiments_app.models import ChangeRequest

pytestmark = pytest.mark.django_db(transaction=True)


def _seed(**kwargs) -> str:
    out = io.StringIO()
    call_command("seed_demo_reviews", stdout=out, **kwargs)
    return out.getvalue()


def test_the_demo_gets_two_things_to_review_and_one_finished_job_once(eager_tasks, settings, make_user,
                                                                     upstream_client):
    from experiments_app import gateway

    settings.DEBUG = True
    settings.PORT = urlsplit(settings.UPSTREAM_BASE_URL).port  # the embedded API on "this" server
    settings.UPSTREAM_BASE_URL = f"http://127.0.0.1:{settings.PORT}"
    gateway.reset_client()
    make_user("editor", "Editor")
    call_command("seed_demo_upstream", stdout=io.StringIO())
    assert "wait for an approver" in _seed()
    request = ChangeRequest.objects.get(kind="edit_experiment")
    assert request.status == "pending" and request.required_approvals == 1
    experiment = upstream_client.get_experiment(request.experiment_id)
    assert request.plan[0]["fields"]["rolloutPercentage"] == experiment.rollout_percentage + 10
    in_review, ran = BulkJob.objects.order_by("pk")
    assert in_review.status == JobStatus.REVIEW and in_review.change_request.required_approvals == 1
    assert ran.status == JobStatus.SUCCEEDED and ran.verified
    assert ran.items.filter(status=ItemStatus.APPLIED).count() == 12
    assert "staff-00@example.com" in upstream_client.list_inclusions(ran.targets.get().experiment_id, "control")

    assert "nothing added" in _seed()
    assert ChangeRequest.objects.count() == 3 and BulkJob.objects.count() == 2


def test_demo_reviews_never_go_to_a_real_upstream(settings, db):
    settings.DEBUG = True
    settings.UPSTREAM_BASE_URL = "https://experiment.amplitude.com"
    assert "skipped" in _seed()
    assert not ChangeRequest.objects.exists() and not BulkJob.objects.exists()
