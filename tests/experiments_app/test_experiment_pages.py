import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from experiments_app import selectors


@pytest.fixture
def signed_in(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def catalogue(upstream_client):
    """Four experiments in varied states, two deployments, a few versions."""
    web = upstream_client.create_deployment(label="web-tests", type="client").id
    server = upstream_client.create_deployment(label="server-tests", type="server").id
    ids = {}
    for key, name, tags, deployments in [
        ("checkout-button", "Checkout button colour", ["checkout", "web"], [web]),
        ("search-ranking", "Search ranking v2", ["search"], [server]),
        ("onboarding-tour", "Onboarding tour", ["onboarding"], [web, server]),
        ("legacy-banner", "Legacy banner", ["old"], []),
    ]:
        ids[key] = upstream_client.create_experiment(key=key, name=name, deployments=deployments).id
        upstream_client.update_experiment(ids[key], {"tags": tags})
    upstream_client.update_experiment(ids["search-ranking"], {"enabled": True, "rolloutPercentage": 25})
    upstream_client.update_experiment(ids["legacy-banner"], {"archive": True})
    return {"ids": ids, "web": web, "server": server}


def rows(response) -> list[str]:
    return re.findall(r'<a href="/experiments/[^/]+/"><code>([^<]+)</code></a>', response.content.decode())


def test_list_shows_live_experiments_newest_first(signed_in, catalogue):
    response = signed_in.get(reverse("home"))
    assert response.status_code == 200
    assert rows(response) == ["onboarding-tour", "search-ranking", "checkout-button"]
    html = response.content.decode()
    assert "web-tests" in html and "server-tests" in html  # deployment labels, not ids
    assert "25%" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "RANKING"}, ["search-ranking"]),
        ({"q": "colour"}, ["checkout-button"]),
        ({"state": "running"}, ["search-ranking"]),
        ({"state": "planning"}, ["onboarding-tour", "checkout-button"]),
        ({"enabled": "no"}, ["onboarding-tour", "checkout-button"]),
        ({"tag": "search"}, ["search-ranking"]),
        ({"evaluation_mode": "local"}, []),
        ({"experiment_type": "hypothesis-testing"}, ["onboarding-tour", "search-ranking", "checkout-button"]),
        ({"archived": "on"}, ["legacy-banner"]),
    ],
)
def test_search_and_filters_narrow_the_list(signed_in, catalogue, query, expected):
    assert rows(signed_in.get(reverse("home"), query)) == expected


def test_deployment_filter_uses_deployment_ids(signed_in, catalogue):
    response = signed_in.get(reverse("home"), {"deployment": catalogue["web"]})
    assert rows(response) == ["onboarding-tour", "checkout-button"]


def test_filter_changes_from_htmx_render_only_the_results(signed_in, catalogue):
    response = signed_in.get(reverse("home"), {"q": "search"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results">')
    assert "<nav" not in html
    assert rows(response) == ["search-ranking"]


def test_load_more_follows_the_cursor_across_upstream_pages(signed_in, upstream_client, monkeypatch):
    for n in range(7):
        upstream_client.create_experiment(key=f"exp-{n}")
    monkeypatch.setattr(selectors, "LIST_PAGE_SIZE", 3)
    monkeypatch.setattr(selectors, "UPSTREAM_PAGE_SIZE", 2)
    seen, url, pages = [], reverse("home") + "?q=exp", 0
    while url:
        response = signed_in.get(url, headers={"HX-Request": "true"} if pages else {})
        seen += rows(response)
        pages += 1
        more = re.search(r'hx-get="([^"]+cursor=[^"]+)"', response.content.decode())
        url = more.group(1).replace("&amp;", "&") if more else None
        assert pages < 10
    assert seen == [f"exp-{n}" for n in reversed(range(7))]
    assert pages == 3


def test_every_tab_renders_from_the_upstream(signed_in, upstream_client, catalogue):
    experiment_id = catalogue["ids"]["search-ranking"]
    upstream_client.create_variant(experiment_id, key="bold", name="Bold", payload={"color": "red", "size": 2},
                                   rollout_weight=2)
    upstream_client.add_inclusions(experiment_id, "bold", [f"qa-{n:03d}@example.com" for n in range(150)])
    upstream_client.update_experiment(experiment_id, {"targetSegments": [{
        "name": "Canadians", "percentage": 40, "rolloutWeights": {"control": 1, "treatment": 1, "bold": 0},
        "conditions": [{"type": "property", "prop": "country", "op": "is", "values": ["Canada"]}],
    }]})

    def tab(name, **params):
        response = signed_in.get(reverse("experiment_tab", args=[experiment_id, name]), params,
                                 headers={"HX-Request": "true"})
        assert response.status_code == 200
        return response.content.decode()

    overview = tab("overview")
    assert "Canadians: users whose country is “Canada”" in overview
    assert "Everyone else" in overview and "<svg" in overview
    assert "control <strong>6.25%</strong>" in overview  # 25% rollout split 1:1:2
    assert "bold <strong>12.5%</strong>" in overview
    assert "Bucketing salt" in overview and "server-tests" in overview

    variants = tab("variants")
    assert "&quot;color&quot;: &quot;red&quot;" in variants  # pretty JSON, escaped
    assert "50.0%" in variants  # bold's weight 2 of 4

    inclusions = tab("inclusions", variant="bold")
    assert "150 / 2000" in inclusions and "0 / 2000" in inclusions
    assert "qa-099@example.com" in inclusions and "qa-100@example.com" not in inclusions
    assert "Page 1 of 2" in inclusions
    assert "qa-149@example.com" in tab("inclusions", variant="bold", page=2)
    searched = tab("inclusions", variant="bold", q="qa-12")
    assert "10 of 150 ids match" in searched  # qa-120 … qa-129

    assert "web-tests" not in tab("deployments") and "server-tests" in tab("deployments")

    versions = tab("versions")
    assert versions.count("<strong>Version ") >= 5
    assert "Target segments" in versions


def test_version_compare_marks_exactly_the_changed_fields(signed_in, upstream_client, catalogue):
    experiment_id = catalogue["ids"]["checkout-button"]
    upstream_client.update_experiment(experiment_id, {"rolloutPercentage": 30, "description": "bigger"})
    versions = [v.version for v in upstream_client.list_versions(experiment_id)]
    response = signed_in.get(reverse("version_compare", args=[experiment_id]),
                             {"a": versions[1], "b": versions[0]}, headers={"HX-Request": "true"})
    html = response.content.decode()
    changed = re.findall(r'<tr class="changed" data-field="([^"]+)"', html)
    assert sorted(changed) == ["description", "rolloutPercentage"]
    assert "2 fields changed" in html
    assert f"<th>Version {versions[1]}</th><th>Version {versions[0]}</th>" in html


def test_version_compare_reports_a_missing_version(signed_in, catalogue):
    response = signed_in.get(reverse("version_compare", args=[catalogue["ids"]["checkout-button"]]),
                             {"a": 1, "b": 99}, headers={"HX-Request": "true"})
    assert "There is no version 99" in response.content.decode()


def test_unknown_experiment_is_a_404(signed_in, embedded_upstream):
    assert signed_in.get(reverse("experiment_detail", args=["999999"])).status_code == 404


def test_upstream_down_shows_an_error_with_retry_instead_of_a_500(signed_in, db):
    response = signed_in.get(reverse("home"))
    assert response.status_code == 502
    html = response.content.decode()
    assert "Could not load this from the Experiment Management API" in html
    assert ">Retry</a>" in html
    fragment = signed_in.get(reverse("experiment_tab", args=["1", "versions"]), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert 'class="upstream-error' in fragment.content.decode() and ">Retry</button>" in fragment.content.decode()


def test_refused_key_is_explained_without_showing_it(signed_in, embedded_upstream, settings):
    settings.UPSTREAM_API_KEY = "definitely-wrong-key-value"
    html = signed_in.get(reverse("home")).content.decode()
    assert "refused the portal&#x27;s API key" in html
    assert "definitely-wrong-key-value" not in html


def test_reads_are_cached_until_the_cache_is_cleared(signed_in, upstream_client, catalogue):
    assert "checkout-button" in rows(signed_in.get(reverse("home")))
    upstream_client.update_experiment(catalogue["ids"]["checkout-button"], {"archive": True})
    assert "checkout-button" in rows(signed_in.get(reverse("home")))  # still the cached read
    selectors.upstream_cache_clear()
    assert "checkout-button" not in rows(signed_in.get(reverse("home")))


def test_markup_in_upstream_data_is_shown_as_text(signed_in, upstream_client):
    evil = "<script>alert(1)</script>"
    created = upstream_client.create_experiment(key="xss-check", name=evil, description="<img src=x onerror=alert(2)>")
    upstream_client.update_experiment(created.id, {"tags": ["<b>bold</b>"]})
    upstream_client.create_variant(created.id, key="v", payload={"html": evil})
    upstream_client.add_inclusions(created.id, "v", ["<i>user</i>"])
    pages = [signed_in.get(reverse("home")).content.decode()] + [
        signed_in.get(reverse("experiment_detail", args=[created.id]), {"tab": tab}).content.decode()
        for tab in ("overview", "variants", "inclusions")
    ]
    pages.append(signed_in.get(reverse("experiment_tab", args=[created.id, "inclusions"]), {"variant": "v"}).content.decode())
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;i&gt;user&lt;/i&gt;" in pages[-1]


def _portal_queries(client, url) -> list[str]:
    """The queries the portal itself makes for a page (the embedded upstream shares the database)."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in captured.captured_queries if "management_api" not in q["sql"]]


def test_query_count_does_not_grow_with_the_number_of_experiments(signed_in, upstream_client):
    for n in range(3):
        upstream_client.create_experiment(key=f"few-{n}")
    few = _portal_queries(signed_in, reverse("home"))
    for n in range(40):
        upstream_client.create_experiment(key=f"many-{n}")
    selectors.upstream_cache_clear()
    many = _portal_queries(signed_in, reverse("home"))
    assert len(many) == len(few) <= 5
