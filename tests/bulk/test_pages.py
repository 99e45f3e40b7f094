"""The bulk-job pages: the form with upload and problems, the preview, progress polling, the
CSV report and the list."""

import csv
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from experiments_app.bulk import selectors, services
from experiments_app.bulk.models import BulkJob, BulkTarget, JobStatus, Kind
from tests.bulk.support import ids, include, new_experiment, submit_and_approve

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def experiment(upstream_client):
    return new_experiment(upstream_client)


def _form(experiment_id: str, **fields) -> dict:
    return {"kind": "add", "experiment": experiment_id, "variant_key": "control", "reason": "QA testers",
            "sweep_filter": "all", **fields}


def test_an_uploaded_csv_becomes_a_draft_with_its_preview(eager_tasks, client, editor, experiment, upstream_client):
    include(upstream_client, experiment, "control", ["u-2"])
    client.force_login(editor)
    upload = SimpleUploadedFile("testers.csv", b"name,user_id\nAnn,u-1\nBob,u-2\nCy,u-3\nAnn,u-1\n", "text/csv")
    response = client.post(reverse("bulk_job_new"), _form(experiment, ids_file=upload))
    job = BulkJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert job.ids == ["u-1", "u-2", "u-3"] and job.status == JobStatus.DRAFT
    page = client.get(job.get_absolute_url()).content.decode()
    assert 'data-figure="add">2<' in page and 'data-figure="already">1<' in page
    assert "Submit for review" in page


def test_an_experiment_can_be_named_by_key(eager_tasks, client, editor, experiment, upstream_client):
    client.force_login(editor)
    key = upstream_client.get_experiment(experiment).key
    client.post(reverse("bulk_job_new"), _form(key, ids_text="a\nb\n"))
    assert BulkJob.objects.get().targets.get().experiment_id == experiment


def test_problems_are_listed_with_line_numbers_and_nothing_is_created(eager_tasks, client, editor, experiment):
    client.force_login(editor)
    response = client.post(reverse("bulk_job_new"), _form(experiment, ids_text="ok\n\nbad\x07\n" + "z" * 300))
    page = response.content.decode()
    assert response.status_code == 200
    assert "line 2: is empty" in page and "line 3: contains a control character" in page
    assert "line 4: is 300 characters long" in page and "nothing was queued" in page
    assert not BulkJob.objects.exists()


def test_non_utf8_upload_is_reported(eager_tasks, client, editor, experiment):
    client.force_login(editor)
    upload = SimpleUploadedFile("ids.txt", b"fine\n\xff\xfe\n", "text/plain")
    page = client.post(reverse("bulk_job_new"), _form(experiment, ids_file=upload)).content.decode()
    assert "line 2: is not valid UTF-8" in page
    assert not BulkJob.objects.exists()


def test_a_job_over_the_cap_is_refused_on_the_form_with_the_numbers(eager_tasks, client, editor, experiment,
                                                                    upstream_client):
    include(upstream_client, experiment, "control", ids("held", 1990))
    client.force_login(editor)
    response = client.post(reverse("bulk_job_new"), _form(experiment, ids_text="\n".join(ids("new", 20))),
                           headers={"HX-Request": "true"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Refused" in page and "holds 1990 ids; adding 20 would make 2010" in page
    assert not BulkJob.objects.exists()


def test_viewers_cannot_open_the_form(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("bulk_job_new")).status_code == 403
    assert client.get(reverse("bulk_jobs")).status_code == 200


def test_progress_polls_while_active_and_answers_286_when_finished(eager_tasks, client, editor, approver,
                                                                   experiment):
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("p", 80), title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    client.force_login(editor)
    url = reverse("bulk_job_progress", args=[job.pk])
    BulkJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    running = client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in running.content.decode()
    # The variants table comes along, swapped out of band, so it moves with the bar.
    assert 'id="bulk-targets" aria-label="Targets" hx-swap-oob="true"' in running.content.decode()
    assert "0 of 1 done" in running.content.decode() and "waiting" in running.content.decode()
    BulkJob.objects.filter(pk=job.pk).update(status=JobStatus.DRAFT)
    submit_and_approve(job, requester=editor, approvers=[approver])
    finished = client.get(url, headers={"HX-Request": "true"})
    page = finished.content.decode()
    assert finished.status_code == 286
    assert "hx-trigger" not in page and 'data-figure="percent">100%' in page and "Verified" in page
    targets = page[page.index('id="bulk-targets"'):]
    assert "1 of 1 done · 1 verified" in targets
    assert re.search(r"<td>done</td>\s*<td class=\"num\">80</td><td class=\"num\">0</td>", targets)


def test_the_variants_table_puts_failures_then_open_variants_first(eager_tasks, editor, upstream_client):
    tag = f"tbl-{new_experiment(upstream_client)}"
    experiments = [new_experiment(upstream_client, tags=[tag]) for _ in range(3)]
    for experiment_id in experiments:
        include(upstream_client, experiment_id, "control", ["gone"])
        include(upstream_client, experiment_id, "treatment", ["gone"])
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.SWEEP, ids=["gone"], title="", reason="x",
                                      sweep_filter="tag", sweep_value=tag)
    targets = list(job.targets.order_by("position"))
    assert len(targets) == 6
    BulkTarget.objects.filter(pk__in=[t.pk for t in targets[:3]]).update(finished_at="2026-01-01T00:00Z", verified=True)
    BulkTarget.objects.filter(pk=targets[2].pk).update(verified=False)
    view = selectors.bulk_job_targets(job, limit=4)
    assert (view.total, view.done, view.verified, view.unverified) == (6, 3, 2, 1)
    assert [t.pk for t in view.rows] == [targets[2].pk, targets[3].pk, targets[4].pk, targets[5].pk]
    assert [(t.applied, t.pending, t.failed) for t in view.rows] == [(0, 1, 0)] * 4


def test_the_requester_replaces_the_id_list_of_a_job_in_review_from_its_page(eager_tasks, client, editor, approver,
                                                                            experiment, upstream_client):
    from experiments_app.change_requests import change_request_approve, current_approvals

    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("v", 60), title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    change_request = services.bulk_job_submit(actor=editor, job=job)
    client.force_login(approver)
    assert client.get(reverse("bulk_job_revise", args=[job.pk])).status_code == 403
    assert "Edit the id list" not in client.get(job.get_absolute_url()).content.decode()
    client.force_login(editor)
    assert "Edit the id list" in client.get(job.get_absolute_url()).content.decode()
    url = reverse("bulk_job_revise", args=[job.pk])

    bad = client.post(url, {"ids_text": "ok-1\n\x07bell\n", "reason": "typo"})
    assert bad.status_code == 200 and "line 2" in bad.content.decode()
    over = client.post(url, {"ids_text": "\n".join(ids("w", 2001)), "reason": "more"})
    assert over.status_code == 200 and "Refused" in over.content.decode()
    job.refresh_from_db()
    assert job.id_count == 60 and job.fingerprint == change_request.plan[0]["hash"]

    upload = SimpleUploadedFile("ids.csv", ("user_id\n" + "\n".join(ids("v", 75))).encode(), "text/csv")
    done = client.post(url, {"ids_file": upload, "reason": "fifteen more testers"})
    assert done.status_code == 302 and done["Location"] == job.get_absolute_url()
    job.refresh_from_db()
    change_request.refresh_from_db()
    assert job.id_count == 75 and job.items.count() == 75 and job.status == JobStatus.REVIEW
    assert job.title.startswith("Bulk add ids to a variant: 75 ids") and change_request.title == job.title
    assert change_request.plan[0]["hash"] == job.fingerprint and change_request.reason == "fifteen more testers"
    change_request_approve(approver=approver, change_request=change_request)
    assert current_approvals(change_request).count() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert sorted(upstream_client.list_inclusions(experiment, "control")) == ids("v", 75)
    finished = client.post(url, {"ids_text": "late", "reason": "too late"})
    assert finished.status_code == 200 and "Only a job in review can be edited." in finished.content.decode()


def test_a_revised_list_small_enough_for_no_approval_runs_at_once(eager_tasks, client, editor, experiment,
                                                                  upstream_client):
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("m", 60), title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    services.bulk_job_submit(actor=editor, job=job)
    client.force_login(editor)
    client.post(reverse("bulk_job_revise", args=[job.pk]), {"ids_text": "\n".join(ids("m", 5)), "reason": "five"})
    job.refresh_from_db()
    assert job.change_request.tier == "bulk_small" and job.status == JobStatus.SUCCEEDED
    assert sorted(upstream_client.list_inclusions(experiment, "control")) == ids("m", 5)


def test_the_report_is_the_ledger_as_csv(eager_tasks, client, editor, approver, experiment, upstream_client):
    include(upstream_client, experiment, "control", ["=cmd"])
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=["=cmd", "a", "b"], title="",
                                      reason="x", experiment_id=experiment, variant_key="control")
    submit_and_approve(job, requester=editor, approvers=[approver])
    client.force_login(editor)
    response = client.get(reverse("bulk_job_report", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Type"].startswith("text/csv")
    assert rows[0] == ["experiment_id", "experiment_key", "variant", "user_id", "action", "status", "note"]
    assert sorted((r[3], r[5]) for r in rows[1:]) == [("'=cmd", "skipped"), ("a", "applied"), ("b", "applied")]


def test_the_list_shows_jobs_with_their_progress(eager_tasks, client, editor, viewer, experiment):
    services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=["a"], title="Pin the CEO", reason="x",
                             experiment_id=experiment, variant_key="control")
    client.force_login(viewer)
    page = client.get(reverse("bulk_jobs")).content.decode()
    assert "Pin the CEO" in page and "Draft (preview)" in page and "0 / 1" in page


def test_the_list_makes_as_many_queries_for_three_jobs_as_for_six(eager_tasks, client, editor, experiment):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def listed(count: int) -> int:
        for n in range(count - BulkJob.objects.count()):
            services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids(f"q{n}", 2), title="", reason="x",
                                     experiment_id=experiment, variant_key="control")
        with CaptureQueriesContext(connection) as queries:
            page = client.get(reverse("bulk_jobs")).content.decode()
        assert page.count("0 / 2 (0%)") == count
        return len(queries)

    client.force_login(editor)
    assert listed(3) == listed(6)


def test_the_list_filters_by_status_and_by_requester(eager_tasks, client, editor, make_user, experiment):
    other = make_user("olga-editor", "Editor")
    for requester, title in ((editor, "Eddie's draft"), (other, "Olga's draft"), (other, "Olga's cancelled")):
        job, _ = services.bulk_job_create(requester=requester, kind=Kind.ADD, ids=["a"], title=title, reason="x",
                                          experiment_id=experiment, variant_key="control")
    services.bulk_job_cancel(actor=other, job=job)
    client.force_login(editor)

    def titles(query: str) -> list[str]:
        page = client.get(reverse("bulk_jobs") + query).content.decode()
        return [t for t in ("Eddie&#x27;s draft", "Olga&#x27;s draft", "Olga&#x27;s cancelled") if t in page]

    assert len(titles("")) == 3
    assert titles("?status=draft") == ["Eddie&#x27;s draft", "Olga&#x27;s draft"]
    assert titles("?status=cancelled") == ["Olga&#x27;s cancelled"]
    assert titles("?status=draft&mine=1") == ["Eddie&#x27;s draft"]
    assert len(titles("?status=<script>")) == 3  # an unknown status is ignored
    assert "No job matches these filters." in client.get(reverse("bulk_jobs") + "?status=running").content.decode()


def test_submit_cancel_and_undo_buttons_work_from_the_page(eager_tasks, client, editor, approver, experiment,
                                                           upstream_client):
    job, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("s", 60), title="", reason="x",
                                      experiment_id=experiment, variant_key="control")
    client.force_login(editor)
    client.post(reverse("bulk_job_submit", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.REVIEW and job.change_request.required_approvals == 1
    client.post(reverse("bulk_job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.change_request.status == "cancelled"

    done, _ = services.bulk_job_create(requester=editor, kind=Kind.ADD, ids=ids("d", 3), title="", reason="x",
                                       experiment_id=experiment, variant_key="control")
    client.post(reverse("bulk_job_submit", args=[done.pk]))
    done.refresh_from_db()
    assert done.status == JobStatus.SUCCEEDED
    response = client.post(reverse("bulk_job_undo", args=[done.pk]))
    undo = BulkJob.objects.get(undo_of=done)
    assert response["Location"] == undo.get_absolute_url()
    client.post(reverse("bulk_job_submit", args=[undo.pk]))
    assert upstream_client.list_inclusions(experiment, "control") == []
