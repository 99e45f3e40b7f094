import csv
import json
from collections.abc import Iterator

from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from experiments_app import roles
from experiments_app.audit import selectors
from experiments_app.audit.forms import AuditFilterForm
from experiments_app.audit.selectors import AuditPage
from experiments_app.audit.services import EXPORT_FIELDS, entry_record
from experiments_app.permissions import require_permission

LIST = "audit/audit_list.html"
JSON_COLUMNS = {"before", "after", "upstream_calls", "detail"}


@require_GET
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
@require_permission(roles.VIEW)
def audit_list(request):
    form = AuditFilterForm(request.GET)
    cursor = request.GET.get("cursor") or None
    page = selectors.audit_page(filters=form.filters(), cursor=cursor) if form.is_valid() else AuditPage([], None)
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {"form": form, "page": page, "query": query.urlencode(),
               "filtered": form.is_valid() and form.filters().active}
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        return render(request, f"{LIST}#{'rows' if cursor else 'results'}", context)
    return render(request, LIST, context)


@require_GET
@require_permission(roles.VIEW)
def audit_entry(request, entry_id: int):
    entry = selectors.audit_entry_get(entry_id)
    diff_rows = selectors.audit_entry_diff(entry)
    return render(request, "audit/audit_entry.html", {
        "entry": entry,
        "diff_rows": diff_rows,
        "changed_count": sum(row.changed for row in diff_rows),
        "correlated": selectors.audit_correlated(entry),
        "delivery": getattr(entry, "delivery", None),
    })


@require_GET
@require_permission(roles.VIEW)
def audit_export_csv(request):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid filters")
    entries = selectors.audit_export(form.filters())
    return _streamed(_csv_lines(entries), "text/csv; charset=utf-8", "csv")


@require_GET
@require_permission(roles.VIEW)
def audit_export_jsonl(request):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid filters")
    entries = selectors.audit_export(form.filters())
    lines = (json.dumps(entry_record(entry), ensure_ascii=False, sort_keys=True) + "\n" for entry in entries)
    return _streamed(lines, "application/x-ndjson; charset=utf-8", "jsonl")


def _batched(lines: Iterator[str], size: int = 200) -> Iterator[str]:
    """Lines joined into chunks of `size`: far fewer writes to the client than one per line."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def _streamed(lines: Iterator[str], content_type: str, extension: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_batched(lines), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


class _Line:
    """A csv.writer target that hands back the line it was given."""

    def write(self, value: str) -> str:
        return value


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if name in JSON_COLUMNS else str(value)
    # A spreadsheet would run a cell starting with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_lines(entries) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_FIELDS)
    for entry in entries:
        record = entry_record(entry)
        yield writer.writerow([_cell(name, record[name]) for name in EXPORT_FIELDS])
