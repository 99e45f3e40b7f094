import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from experiments_app import selectors

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def experiments(upstream_client, monkeypatch):
    monkeypatch.setattr(selectors, "LIST_PAGE_SIZE", 5)
    web = upstream_client.create_deployment(label="web-client", type="client").id
    for n in range(8):
        upstream_client.create_experiment(key=f"filler-{n}", name=f"Filler {n}")
    created = upstream_client.create_experiment(
        key="checkout-cta", name="Checkout call to action", description="Bigger, bolder checkout button",
        deployments=[web],
        variants=[{"key": "control"}, {"key": "treatment", "payload": {"label": "Buy now", "color": "#e03131"}}],
    )
    experiment_id = created.id
    upstream_client.update_experiment(experiment_id, {"tags": ["checkout", "web"], "targetSegments": [{
        "name": "Beta testers", "percentage": 100, "rolloutWeights": {"control": 1, "treatment": 3},
        "conditions": [{"type": "property", "prop": "gp:beta", "op": "is", "values": ["true"]}],
    }]})
    upstream_client.update_experiment(experiment_id, {"enabled": True, "rolloutPercentage": 10})
    upstream_client.update_experiment(experiment_id, {"rolloutPercentage": 30})
    upstream_client.add_inclusions(experiment_id, "treatment", [f"qa-{n}@example.com" for n in range(12)])
    return experiment_id


def test_viewer_browses_filters_and_compares_versions(page, live_server, viewer, login, experiments):
    login(viewer)
    rows = page.locator("table.experiments tbody tr:not(.load-more)")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("checkout-cta")

    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(9)

    page.get_by_label("Search key or name").fill("checkout")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(f"{live_server.url}/?q=checkout&state=&enabled=&tag=&deployment=&evaluation_mode=&experiment_type=")
    page.get_by_label("State").select_option("planning")
    expect(page.get_by_text("No experiment matches.")).to_be_visible()
    page.get_by_label("State").select_option("running")
    expect(page).to_have_url(re.compile(r"state=running"))
    expect(rows.first).to_contain_text("checkout-cta")
    page.go_back()
    expect(page).to_have_url(re.compile(r"state=planning"))
    expect(page.get_by_text("No experiment matches.")).to_be_visible()
    page.go_forward()

    page.get_by_role("link", name="checkout-cta").click()
    expect(page.get_by_role("heading", name="Allocation")).to_be_visible()
    expect(page.get_by_text("Beta testers — custom property “beta” is “true”")).to_be_visible()
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # refreshes the README's picture
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=str(DOCS / "experiment-page.png"), full_page=False)

    page.get_by_role("link", name="Variants").click()
    expect(page.locator("pre.payload")).to_contain_text('"label": "Buy now"')
    page.get_by_role("link", name="Inclusions").click()
    expect(page.get_by_text("0 / 2000")).to_be_visible()
    page.get_by_role("link", name="treatment").click()
    expect(page.get_by_text("12 ids pinned to")).to_be_visible()
    expect(page.get_by_text("12 / 2000")).to_be_visible()
    # htmx binds the swapped-in search box when the swap settles: type only after that.
    expect(page.locator(".htmx-settling, .htmx-added")).to_have_count(0)
    page.get_by_label("Search inclusions").fill("qa-1")
    expect(page.get_by_text("3 of 12 ids match")).to_be_visible()
    page.get_by_role("link", name="Deployments").click()
    expect(page.get_by_role("cell", name="web-client")).to_be_visible()

    page.get_by_role("link", name="Versions").click()
    expect(page).to_have_url(f"{live_server.url}/experiments/{experiments}/?tab=versions")
    diff = page.locator("table.diff")
    expect(diff).to_be_visible()  # the two newest versions are compared on arrival
    expect(page.get_by_text("Version 4 (portal-tests) → version 5 (portal-tests): 0 fields changed")).to_be_visible()
    page.get_by_label("Older version").select_option("3")
    page.get_by_label("Newer version").select_option("4")
    page.get_by_role("button", name="Compare").click()
    changed = diff.locator("tr.changed")
    expect(changed).to_have_count(1)
    expect(changed.first).to_contain_text("Rollout (non-targeted users)")
    expect(changed.first.locator("td.old")).to_have_text("10%")
    expect(changed.first.locator("td.new")).to_have_text("30%")
    page.get_by_label("Older version").select_option("1")
    page.get_by_label("Newer version").select_option("5")
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_text("Version 1 (portal-tests) → version 5")).to_be_visible()
    for field in ("enabled", "rolloutPercentage", "targetSegments", "tags"):
        expect(diff.locator(f'tr.changed[data-field="{field}"]')).to_have_count(1)
    expect(diff.locator('tr.same[data-field="key"]')).to_have_count(1)


def test_upstream_failure_shows_the_error_and_recovers_on_retry(page, live_server, viewer, login, experiments,
                                                                settings):
    login(viewer)
    page.get_by_role("link", name="checkout-cta").click()
    expect(page.get_by_role("heading", name="Allocation")).to_be_visible()

    settings.MANAGEMENT_API_FAULTS = "503=1.0"
    settings.UPSTREAM_WEB_RETRY_SECONDS = 0.5
    selectors.upstream_cache_clear()
    page.get_by_role("link", name="Versions").click()
    error = page.locator(".upstream-error")
    expect(error).to_contain_text("unavailable right now")
    expect(page.get_by_role("link", name="Overview")).to_be_visible()  # the rest of the page still works

    settings.MANAGEMENT_API_FAULTS = ""
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("table.diff")).to_be_visible()
    expect(error).to_have_count(0)


def test_markup_in_names_never_runs_as_script(page, live_server, viewer, login, upstream_client):
    created = upstream_client.create_experiment(
        key="xss-probe", name='<img src=x onerror="window.__pwned=1">',
        description="<script>window.__pwned=2</script>")
    upstream_client.update_experiment(created.id, {"tags": ["<svg onload=window.__pwned=3>"]})
    login(viewer)
    expect(page.get_by_text('<img src=x onerror="window.__pwned=1">')).to_be_visible()
    page.get_by_role("link", name="xss-probe").click()
    expect(page.get_by_text("<script>window.__pwned=2</script>").first).to_be_visible()
    assert page.evaluate("window.__pwned") is None
