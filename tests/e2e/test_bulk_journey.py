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


def test_sweep_reads_in_the_background_then_two_approvals_and_every_variant_is_clean(
        page, live_server, editor, approver, make_user, login, upstream_client, bulk_worker, settings):
    second_approver = make_user("arno-approver", "Approver")
    tag = f"offboard-{new_experiment(upstream_client)}"
    experiments = [new_experiment(upstream_client, prefix="sweep", tags=[tag]) for _ in range(4)]
    for experiment_id in experiments:
        for variant in ("control", "treatment"):
            include(upstream_client, experiment_id, variant, ["leaver-1", "leaver-2", f"stays-{variant}"])
    settings.MANAGEMENT_API_FAULTS = "latency=1:0.15"  # slow enough to see the reading

    login(editor)
    page.goto(f"{live_server.url}/bulk-jobs/new/")
    page.get_by_label("Remove ids from every variant of matching experiments").check()
    page.get_by_label("Which experiments").select_option("tag")
    page.get_by_label("Tag or deployment id").fill(tag)
    page.get_by_label("Ids (one per line)").fill("leaver-1\nleaver-2\nleaver-3\n")
    page.get_by_label("Why").fill("Offboarding three contractors")
    page.get_by_role("button", name="Preview").click()

    expect(page).to_have_url(re.compile(r"/bulk-jobs/\d+/$"))
    expect(page.locator(".job-status")).to_have_text("Reading the variants")
    # When the worker is done, the page reloads itself into the preview.
    preview = page.get_by_role("region", name="Preview")
    expect(preview.locator('[data-figure="remove"]')).to_have_text("16", timeout=30_000)
    expect(preview.locator('[data-figure="targets"]')).to_have_text("8")
    expect(preview.locator('[data-figure="absent"]')).to_have_text("1")
    expect(page.locator(".job-status")).to_have_text("Draft (preview)")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_text("needs 2 approval(s) before it runs")).to_be_visible()
    job = BulkJob.objects.get()

    for reviewer in (approver, second_approver):
        page.get_by_role("button", name="Log out").click()
        login(reviewer)
        page.goto(f"{live_server.url}{job.get_absolute_url()}")
        page.get_by_role("link", name=f"#{job.change_request_id}").click()
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("Approved.", exact=True)).to_be_visible()

    page.goto(f"{live_server.url}{job.get_absolute_url()}")
    expect(page.locator('[data-figure="percent"]')).to_have_text("100%", timeout=60_000)
    expect(page.locator(".bulk-outcome mark")).to_have_text("Verified")
    expect(page.locator('#bulk-targets [data-figure="targets"]')).to_have_text("8 of 8 done · 8 verified")
    settings.MANAGEMENT_API_FAULTS = ""
    for experiment_id in experiments:
        for variant in ("control", "treatment"):
            assert upstream_client.list_inclusions(experiment_id, variant) == [f"stays-{variant}"]
