import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from experiments_app.audit import actions
from experiments_app.audit.models import AuditEntry
from experiments_app.audit.services import audit_outbox_process, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(editor, approver):
    """A small history: requests and approvals on two experiments, a login, an external change."""
    entries = []
    for n in range(7):
        entries.append(audit_record(
            action=actions.CHANGE_REQUEST_CREATED, actor=editor, experiment_id="exp-checkout",
            experiment_key="checkout", change_request_id=n, reason=f"ramp checkout to {10 * n}%",
            before={"rolloutPercentage": 10 * n}, after={"rolloutPercentage": 10 * n + 10}, correlation_id=f"cr-{n}"))
        entries.append(audit_record(action=actions.CHANGE_REQUEST_APPROVED, actor=approver,
                                    experiment_id="exp-checkout", experiment_key="checkout", change_request_id=n,
                                    reason="looks right", correlation_id=f"cr-{n}"))
    entries.append(audit_record(action=actions.CHANGE_REQUEST_CREATED, actor=editor, experiment_id="exp-search",
                                experiment_key="search", reason="new search ranking"))
    entries.append(audit_record(action=actions.EXTERNAL_CHANGE, actor="upstream:grace-script",
                                experiment_id="exp-search", experiment_key="search",
                                before={"enabled": False}, after={"enabled": True},
                                detail={"createdBy": "grace-script", "version": 3}))
    audit_outbox_process()
    return entries


def ids_on_page(response) -> list[int]:
    return [entry.id for entry in response.context["page"].entries]


def all_ids_through_pages(client, params: dict) -> list[int]:
    ids, cursor = [], None
    while True:
        response = client.get(reverse("audit"), {**params, **({"cursor": cursor} if cursor else {})})
        ids += ids_on_page(response)
        cursor = response.context["page"].next_cursor
        if not cursor:
            return ids


def test_audit_page_lists_entries_newest_first(client, viewer, history):
    client.force_login(viewer)

    response = client.get(reverse("audit"))

    assert response.status_code == 200
    ids = ids_on_page(response)
    assert ids[0] == AuditEntry.objects.latest("id").id  # the viewer's own sign-in
    assert history[-1].id in ids and ids == sorted(ids, reverse=True)
    assert b"Changed outside the portal" in response.content
    assert b"user: vera-viewer \xc2\xb7 change: add \xc2\xb7 groups: Viewer" in response.content, \
        "entries without a reason show their detail"


@pytest.mark.parametrize(("params", "expected"), [
    ({"experiment": "search"}, 2),
    ({"experiment": "exp-search"}, 2),
    ({"actor": "ada-approver"}, 7),
    ({"action": actions.CHANGE_REQUEST_CREATED}, 8),
    ({"q": "ramp checkout"}, 7),
    ({"q": "grace-script"}, 1),
    ({"correlation": "cr-3"}, 2),
    ({"action": actions.CHANGE_REQUEST_CREATED, "experiment": "checkout", "q": "60%"}, 1),
])
def test_filters_narrow_the_history(client, viewer, history, params, expected):
    client.force_login(viewer)

    assert len(all_ids_through_pages(client, params)) == expected


def test_date_range_includes_both_days(client, viewer, history):
    client.force_login(viewer)
    today = datetime.now(UTC).date()

    assert len(all_ids_through_pages(client, {"date_from": today, "date_to": today})) == AuditEntry.objects.count()
    assert all_ids_through_pages(client, {"date_to": today - timedelta(days=1)}) == []


def test_an_end_date_before_the_start_date_is_explained(client, viewer, history):
    client.force_login(viewer)

    response = client.get(reverse("audit"), {"date_from": "2026-02-02", "date_to": "2026-02-01"})

    assert b"The end date is before the start date." in response.content


def test_cursor_pages_cover_every_entry_once(client, viewer, history, settings, monkeypatch):
    monkeypatch.setattr("experiments_app.audit.selectors.PAGE_SIZE", 4)
    client.force_login(viewer)

    ids = all_ids_through_pages(client, {})

    assert ids == sorted(AuditEntry.objects.values_list("id", flat=True), reverse=True)


def test_htmx_filtering_returns_the_results_fragment_and_load_more_the_rows(client, viewer, history, monkeypatch):
    monkeypatch.setattr("experiments_app.audit.selectors.PAGE_SIZE", 5)
    client.force_login(viewer)

    results = client.get(reverse("audit"), {"actor": "eddie-editor"}, headers={"HX-Request": "true"})
    assert b'id="results"' in results.content and b"<html" not in results.content
    cursor = results.context["page"].next_cursor
    rows = client.get(reverse("audit"), {"actor": "eddie-editor", "cursor": cursor}, headers={"HX-Request": "true"})
    assert b'id="results"' not in rows.content and b"<tr" in rows.content


def test_entry_detail_shows_the_diff_and_links_the_correlation_id(client, viewer, history):
    client.force_login(viewer)
    created = history[6]

    response = client.get(reverse("audit_entry", args=[created.id]))

    content = response.content.decode()
    assert 'table class="diff"' in content and 'data-field="rolloutPercentage"' in content
    assert "<th>Before</th><th>After</th>" in content
    assert "30%" in content and "40%" in content
    assert f'href="/audit/?correlation=cr-3"' in content
    assert response.context["correlated"] == [history[7]]


def test_entry_detail_lists_upstream_calls(client, viewer):
    entry = audit_record(action=actions.CHANGE_REQUEST_APPLIED, correlation_id="cr-9", upstream_calls=[
        {"method": "PATCH", "path": "/api/1/experiments/e1", "status": 200, "latency_ms": 41.5, "attempt": 1,
         "correlation_id": "cr-9"}])
    client.force_login(viewer)

    content = client.get(reverse("audit_entry", args=[entry.id])).content.decode()

    assert "PATCH" in content and "/api/1/experiments/e1" in content and "41.5 ms" in content


def test_export_of_a_filtered_view_matches_the_page(client, viewer, history, monkeypatch):
    monkeypatch.setattr("experiments_app.audit.selectors.PAGE_SIZE", 3)
    client.force_login(viewer)
    params = {"experiment": "checkout", "q": "ramp"}
    on_pages = all_ids_through_pages(client, params)

    jsonl = client.get(reverse("audit_export_jsonl"), params)
    csv_response = client.get(reverse("audit_export_csv"), params)

    assert jsonl.streaming and csv_response.streaming
    records = [json.loads(line) for line in b"".join(jsonl.streaming_content).decode().splitlines()]
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert [r["id"] for r in records] == on_pages
    assert [int(r["id"]) for r in rows] == on_pages
    assert records[0]["after"] == {"rolloutPercentage": 70} and json.loads(rows[0]["after"]) == {"rolloutPercentage": 70}
    assert records[0]["chain_hash"] == AuditEntry.objects.get(pk=on_pages[0]).chain_hash
    assert 'attachment; filename="audit-' in jsonl["Content-Disposition"]


def test_csv_export_defuses_spreadsheet_formulas(client, viewer):
    audit_record(action=actions.CHANGE_REQUEST_CREATED, reason="=HYPERLINK(\"http://evil\")")
    client.force_login(viewer)

    response = client.get(reverse("audit_export_csv"), {"action": actions.CHANGE_REQUEST_CREATED})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert rows[0]["reason"].startswith("'=")


def test_audit_pages_need_the_view_permission(client, make_user, history):
    nobody = make_user("no-role", "Viewer")
    nobody.groups.clear()
    client.force_login(nobody)

    for url in (reverse("audit"), reverse("audit_entry", args=[history[0].id]), reverse("audit_export_csv"),
                reverse("audit_export_jsonl")):
        assert client.get(url).status_code == 403


def test_entries_cannot_be_changed_through_the_portal(client, admin_user, history):
    client.force_login(admin_user)
    entry = history[0]

    assert client.post(reverse("audit_entry", args=[entry.id]), {"reason": "x"}).status_code == 405
    assert AuditEntry.objects.get(pk=entry.pk).reason == entry.reason
