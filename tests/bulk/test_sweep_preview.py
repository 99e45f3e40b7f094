"""A sweep's preview reads every variant of every matching experiment, so from the pages a worker
reads them while the job page shows how far it got; the job then becomes a draft, or fails
saying why."""

import pytest
from django.urls import reverse

from experiments_app import gateway
from experiments_app.bulk import services
from experiments_app.bulk.models import BulkJob, JobStatus
from tests.bulk.support import ids, include, new_experiment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tagged(upstream_client):
    """Three experiments tagged alike, each holding two of the leavers in both variants."""
    tag = f"sweep-{new_experiment(upstream_client)}"
    experiments = [new_experiment(upstream_client, tags=[tag]) for _ in range(3)]
    for experiment_id in experiments:
        for variant in ("control", "treatment"):
            include(upstream_client, experiment_id, variant, ids("leaver", 2) + [f"stay-{experiment_id}"])
    return tag


def test_the_form_queues_the_preview_and_the_job_becomes_a_draft(eager_tasks, client, editor, tagged):
    client.force_login(editor)
    response = client.post(reverse("bulk_job_new"), {"kind": "sweep", "sweep_filter": "tag", "sweep_value": tagged,
                                                     "ids_text": "\n".join(ids("leaver", 5)), "reason": "offboarding"})
    job = BulkJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert job.status == JobStatus.DRAFT  # the (eager) worker has read all six variants
    assert (job.preview["targets"], job.preview["remove"], job.preview["absent"]) == (6, 12, 3)
    assert job.title == "Bulk remove ids from every variant of matching experiments: 5 ids, 6 variants"
    assert job.fingerprint == services.job_fingerprint(job) and job.preview["tier"] == "bulk_sweep"


def test_the_page_shows_the_reading_then_reloads_into_the_preview(embedded_upstream, bulk_settings, client, editor,
                                                                  tagged):
    job = services.bulk_sweep_draft(requester=editor, ids=ids("leaver", 5), title="", reason="offboarding",
                                    sweep_filter="tag", sweep_value=tagged)  # queued; no worker here
    client.force_login(editor)
    page = client.get(job.get_absolute_url()).content.decode()
    assert "Reading the variants" in page and "Finding the matching experiments" in page
    assert "?from=previewing" in page and "Cancel job" in page and "Submit for review" not in page

    reported = []
    preview = services.bulk_job_preview(kind="sweep", ids=ids("leaver", 5), sweep_filter="tag", sweep_value=tagged,
                                        progress=lambda done, total: reported.append((done, total)))
    assert reported == [(n, 6) for n in range(7)] and len(preview.targets) == 6

    poll_url = reverse("bulk_job_progress", args=[job.pk]) + "?from=previewing"
    polling = client.get(poll_url, headers={"HX-Request": "true"})
    assert polling.status_code == 200 and "hx-trigger" in polling.content.decode()
    assert services.bulk_job_build_preview(job_id=job.pk) == JobStatus.DRAFT
    assert services.bulk_job_build_preview(job_id=job.pk) == "not-previewing"  # a second run changes nothing
    job.refresh_from_db()
    assert job.targets.count() == 6 and job.items.count() == 12
    reloaded = client.get(poll_url, headers={"HX-Request": "true"})
    assert reloaded["HX-Refresh"] == "true"
    assert "Submit for review" in client.get(job.get_absolute_url()).content.decode()


def test_a_preview_that_cannot_read_or_finds_nothing_fails_saying_why(embedded_upstream, bulk_settings, editor,
                                                                     settings, tagged):
    nothing = services.bulk_sweep_draft(requester=editor, ids=["a"], title="", reason="x", sweep_filter="tag",
                                        sweep_value="no-such-tag")
    assert services.bulk_job_build_preview(job_id=nothing.pk) == JobStatus.FAILED
    nothing.refresh_from_db()
    assert nothing.error == "Refused: No experiment matches the filter." and not nothing.targets.exists()

    down = services.bulk_sweep_draft(requester=editor, ids=["a"], title="", reason="x", sweep_filter="all",
                                     sweep_value="")
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:9"
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0.5
    gateway.reset_client()
    assert services.bulk_job_build_preview(job_id=down.pk) == JobStatus.FAILED
    down.refresh_from_db()
    assert down.error.startswith("The experiment service could not be read") and down.is_finished


def test_a_stalled_preview_is_queued_again_and_a_cancelled_one_stays_cancelled(eager_tasks, editor, tagged,
                                                                               monkeypatch):
    from experiments_app.bulk.tasks import build_bulk_preview

    with monkeypatch.context() as patch:
        patch.setattr(build_bulk_preview, "delay_on_commit", lambda *args: None)  # the worker died before reading
        stalled = services.bulk_sweep_draft(requester=editor, ids=ids("leaver", 2), title="", reason="x",
                                            sweep_filter="tag", sweep_value=tagged)
        cancelled = services.bulk_sweep_draft(requester=editor, ids=ids("leaver", 2), title="", reason="x",
                                              sweep_filter="tag", sweep_value=tagged)
    services.bulk_job_cancel(actor=editor, job=cancelled)
    BulkJob.objects.filter(pk__in=[stalled.pk, cancelled.pk]).update(updated_at="2000-01-01T00:00Z")
    assert services.bulk_jobs_requeue_stale() == [stalled.pk]  # re-queued: the eager worker reads it now
    stalled.refresh_from_db()
    cancelled.refresh_from_db()
    assert stalled.status == JobStatus.DRAFT and stalled.items.count() == 12
    assert cancelled.status == JobStatus.CANCELLED and not cancelled.targets.exists()


def test_a_swept_id_added_after_the_preview_is_swept_too_and_verified_gone(eager_tasks, editor, approver,
                                                                           make_user, upstream_client):
    from tests.bulk.support import submit_and_approve

    tag = f"late-{new_experiment(upstream_client)}"
    early, late = new_experiment(upstream_client, tags=[tag]), new_experiment(upstream_client, tags=[tag])
    include(upstream_client, early, "control", ["gone", "kept"])
    job, preview = services.bulk_job_create(requester=editor, kind="sweep", ids=["gone"], title="", reason="erasure",
                                            sweep_filter="tag", sweep_value=tag)
    assert job.preview["remove"] == 1 and job.preview["calls"] == 3 + 1 + 1 + 1  # 3 calls + a read per empty variant
    include(upstream_client, late, "treatment", ["gone"])  # someone pins the id meanwhile
    job = submit_and_approve(job, requester=editor, approvers=[approver, make_user("bo-approver", "Approver")])
    assert job.status == JobStatus.SUCCEEDED and job.verified
    assert upstream_client.list_inclusions(late, "treatment") == []
    assert upstream_client.list_inclusions(early, "control") == ["kept"]
    late_item = job.items.get(target__experiment_id=late)
    assert (late_item.status, late_item.note) == ("applied", "appeared since the preview")
