import re

import pytest
from playwright.sync_api import expect

from experiments_app.models import ChangeRequest, Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def running_experiment(upstream_client):
    experiment_id = upstream_client.create_experiment(key="checkout-rollout", name="Checkout rollout").id
    upstream_client.update_experiment(experiment_id, {"enabled": True, "rolloutPercentage": 10})
    return experiment_id


def request_rollout(page, live_server, experiment_id, percentage: int) -> int:
    page.goto(f"{live_server.url}/experiments/{experiment_id}/")
    page.get_by_role("button", name="Edit settings").click()
    page.get_by_label("Rollout % (non-targeted users)").fill(str(percentage))
    page.get_by_label("Reason").fill("Metrics are healthy after a week at 10%")
    page.get_by_role("button", name="Request this change").click()
    expect(page.locator(".status").first).to_have_text("Pending review")
    return int(re.search(r"/requests/(\d+)/", page.url).group(1))


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_rollout_raise_is_requested_approved_and_applied_by_the_worker(
        page, live_server, editor, approver, login, running_experiment, upstream_client, celery_worker):
    versions_before = upstream_client.list_versions(running_experiment)[0].version
    login(editor)
    request_id = request_rollout(page, live_server, running_experiment, 50)
    expect(page.get_by_role("status")).to_have_text(f"Change request #{request_id} needs 1 approval(s).")
    expect(page.locator(".page-head p").first).to_contain_text("needs 1 approval")
    changed = page.locator('table.diff tr.changed[data-field="rolloutPercentage"]')
    expect(changed.locator("td.old")).to_have_text("10%")
    expect(changed.locator("td.new")).to_have_text("50%")

    # The requester sees no approve button, and a forged POST is refused.
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(f"{live_server.url}/requests/{request_id}/approve",
                               headers={"X-CSRFToken": csrf, "Referer": page.url}, form={"comment": "lgtm"})
    assert forged.status == 403
    forged_htmx = page.request.post(f"{live_server.url}/requests/{request_id}/approve",
                                    headers={"X-CSRFToken": csrf, "HX-Request": "true", "Referer": page.url})
    assert forged_htmx.status == 403
    assert ChangeRequest.objects.get(pk=request_id).approvals.count() == 0
    log_out(page)

    login(approver)
    page.get_by_role("link", name="Approvals").click()
    page.get_by_role("link", name=re.compile("checkout-rollout: Edit rolloutPercentage")).click()
    page.get_by_label("Comment", exact=True).fill("Go ahead")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".status").first).to_have_text("Applied", timeout=30_000)
    expect(page.get_by_text("Edit rolloutPercentage — applied")).to_be_visible()

    experiment = upstream_client.get_experiment(running_experiment)
    assert experiment.rollout_percentage == 50
    versions = upstream_client.list_versions(running_experiment)
    assert versions[0].version == versions_before + 1
    assert ChangeRequest.objects.get(pk=request_id).status == Status.APPLIED


def test_upstream_change_between_request_and_approval_is_a_conflict(
        page, live_server, editor, approver, login, running_experiment, upstream_client, celery_worker):
    login(editor)
    request_id = request_rollout(page, live_server, running_experiment, 40)
    upstream_client.update_experiment(running_experiment, {"rolloutPercentage": 20})  # made outside the portal
    version_after_outside_change = upstream_client.list_versions(running_experiment)[0].version
    log_out(page)

    login(approver)
    page.goto(f"{live_server.url}/requests/{request_id}/")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".status").first).to_have_text("Conflict", timeout=30_000)
    row = page.locator("table.three-way tr.changed")
    expect(row.locator("td.old")).to_have_text("10%")
    expect(row.locator("td.now")).to_have_text("20%")
    expect(row.locator("td.new")).to_have_text("40%")
    assert upstream_client.get_experiment(running_experiment).rollout_percentage == 20
    assert upstream_client.list_versions(running_experiment)[0].version == version_after_outside_change

    page.get_by_role("button", name="Rebase into a new request").click()
    expect(page.get_by_text(f"Rebased from request #{request_id}")).to_be_visible()
    rebased = wait_for(lambda: ChangeRequest.objects.filter(rebased_from_id=request_id).first(), message="rebase")
    assert rebased.snapshot == {"rolloutPercentage": 20}
