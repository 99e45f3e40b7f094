import re

import pytest
from playwright.sync_api import expect

from experiments_app.audit import actions
from experiments_app.audit.services import audit_outbox_process, audit_record

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def history(editor, approver):
    for n in range(3):
        audit_record(action=actions.CHANGE_REQUEST_CREATED, actor=editor, experiment_id="exp-search",
                     experiment_key="search-ranking", reason=f"search tweak {n}")
    audit_record(action=actions.CHANGE_REQUEST_CREATED, actor=editor, experiment_id="exp-checkout",
                 experiment_key="checkout-cta", change_request_id=41, reason="Ramp the checkout button to 30%",
                 before={"rolloutPercentage": 10}, after={"rolloutPercentage": 30}, correlation_id="cr-41")
    audit_record(action=actions.CHANGE_REQUEST_APPROVED, actor=approver, experiment_id="exp-checkout",
                 experiment_key="checkout-cta", change_request_id=41, reason="Numbers look fine",
                 correlation_id="cr-41")
    audit_outbox_process()


def test_viewer_filters_the_audit_history_and_follows_a_change(page, embedded_upstream, live_server, viewer, login,
                                                              history):
    login(viewer)
    page.locator("ul.main-nav").get_by_role("link", name="Audit").click()
    rows = page.locator("table.audit tbody tr")
    expect(page.get_by_role("heading", name="Audit history")).to_be_visible()

    page.get_by_label("Experiment").fill("checkout-cta")
    page.get_by_label("Experiment").press("Enter")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"experiment=checkout-cta"))
    page.get_by_label("Action").select_option(actions.CHANGE_REQUEST_CREATED)
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"action=change_request.created"))
    expect(page.get_by_role("link", name="CSV")).to_have_attribute(
        "href", re.compile(r"/audit/export\.csv\?experiment=checkout-cta.*action=change_request\.created"))

    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Change request created")).to_be_visible()
    changed = page.locator('table.diff tr[data-field="rolloutPercentage"]')
    expect(changed).to_have_class(re.compile("changed"))
    expect(changed.locator("td.old")).to_have_text("10%")
    expect(changed.locator("td.new")).to_have_text("30%")
    expect(page.get_by_text("Ramp the checkout button to 30%")).to_be_visible()

    page.locator("a.correlation").click()
    expect(page).to_have_url(re.compile(r"/audit/\?correlation=cr-41"))
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Change request approved")
