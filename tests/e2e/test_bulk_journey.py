"""Browser journey: an editor uploads a CSV of ids, checks the preview and submits the job; an
approver approves its change request; a real Celery worker works the ledger while the job
page's progress bar climbs to 100%."""

import re

import pytest
from playwright.sync_api import expect

from experiments_app.bulk.models import BulkJob, JobStatus
from experiments_app.models import ChangeRequest
from tests.bulk.conftest import bulk_settings, bulk_worker, bulk_worker_factory  # noqa: F401 (fixtures)
from tests.bulk.support import ids, include, new_experiment, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_csv_upload_preview_approval_and_progress_to_100_percent(page, live_server, editor, approver, login,
                                                                 upstream_client, bulk_worker, settings):
    experiment = new_experiment(upstream_client, prefix="checkout")
    key = upstream_client.get_experiment(experiment).key
    include(upstream_client, experiment, "treatment", ids("tester", 5))
    csv_text = "name,user_id\n" + "".join(f"Tester {n},{user}\n" for n, user in enumerate(ids("tester", 300)))
    settings.MANAGEMENT_API_FAULTS = "latency=1:0.15"  # slow enough to watch the bar move

    login(editor)
    page.get_by_role("link", name="Bulk jobs").click()
    page.get_by_role("button", name="New bulk job").click()
    page.get_by_label("Add ids to a variant").check()
    page.get_by_label("Experiment (id or key)", exact=True).fill(key)
    page.get_by_label("Variant key", exact=True).fill("treatment")
    page.get_by_label("…or a CSV/TXT file").set_input_files(
        files=[{"name": "testers.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}])
    page.get_by_label("Why").fill("QA testers for the checkout fix")
    page.get_by_role("button", name="Preview").click()

    expect(page).to_have_url(re.compile(r"/bulk-jobs/\d+/$"))
    job = BulkJob.objects.get()
    preview = page.get_by_role("region", name="Preview")
    expect(preview.locator('[data-figure="ids"]')).to_have_text("300")
    expect(preview.locator('[data-figure="add"]')).to_have_text("295")
    expect(preview.locator('[data-figure="already"]')).to_have_text("5")
    expect(preview.locator('[data-figure="calls"]')).to_have_text("5")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".job-status")).to_have_text("In review")
    job.refresh_from_db()
    expect(page.get_by_text("needs 1 approval(s) before it runs")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    login(approver)
    page.goto(f"{live_server.url}{job.get_absolute_url()}")
    page.get_by_role("link", name=f"#{BulkJob.objects.get().change_request_id}").click()
    page.get_by_role("button", name="Approve").click()
    wait_until(lambda: ChangeRequest.objects.get(pk=job.change_request_id).status != "pending", timeout=20,
               what="the approval to land")

    page.goto(f"{live_server.url}{job.get_absolute_url()}")
    bar = page.locator("#bulk-status progress")
    expect(page.locator('[data-figure="percent"]')).to_have_text("100%", timeout=60_000)
    expect(page.locator(".job-status")).to_have_text("Succeeded")
    expect(page.locator(".bulk-outcome mark")).to_have_text("Verified")
    # The variants table moved with the bar (swapped out of band by the same poll).
    expect(page.locator('#bulk-targets [data-figure="targets"]')).to_have_text("1 of 1 done · 1 verified")
    expect(page.locator("#bulk-targets tbody tr td").nth(2)).to_have_text("done")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "300"
    assert page.locator("#bulk-status[hx-trigger]").count() == 0  # polling stopped (286)
    settings.MANAGEMENT_API_FAULTS = ""
    assert BulkJob.objects.get().status == JobStatus.SUCCEEDED
    assert sorted(upstream_client.list_inclusions(experiment, "treatment")) == ids("tester", 300)
