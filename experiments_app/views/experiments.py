from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from experiments_app import gateway, readable, roles, selectors
from experiments_app.audit import selectors as audit_selectors
from experiments_app.forms import ExperimentFilterForm, InclusionSearchForm, VersionCompareForm
from experiments_app.permissions import require_permission
from experiments_app.selectors import ExperimentFilters
from experiments_app.views.upstream import upstream_error, upstream_problem

TABS = [("overview", "Overview"), ("variants", "Variants"), ("inclusions", "Inclusions"),
        ("deployments", "Deployments"), ("versions", "Versions"), ("activity", "Activity")]
INCLUSION_CAP = 2000
INCLUSIONS_PER_PAGE = 100
DETAIL = "experiments_app/experiment_detail.html"


@require_GET
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
@require_permission(roles.VIEW)
def experiment_list(request):
    form = ExperimentFilterForm(request.GET)
    filters = form.filters() if form.is_valid() else ExperimentFilters()
    cursor = request.GET.get("cursor") or None
    try:
        listing = selectors.experiment_list(filters=filters, cursor=cursor)
        deployments = selectors.deployments_by_id()
    except gateway.UpstreamError as error:
        return upstream_error(request, error)
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "listing": listing,
        "deployments": deployments,
        "query": query.urlencode(),
        "active_filters": [f for f, v in form.cleaned_data.items() if v] if form.is_valid() else [],
    }
    fragment = request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request
    if fragment:
        return render(request, "experiments_app/experiment_list.html#" + ("rows" if cursor else "results"), context)
    return render(request, "experiments_app/experiment_list.html", context)


@require_GET
@require_permission(roles.VIEW)
def experiment_detail(request, experiment_id: str):
    tab = request.GET.get("tab", "overview")
    if tab not in dict(TABS):
        tab = "overview"
    try:
        experiment = selectors.experiment_get(experiment_id)
    except gateway.UpstreamError as error:
        return upstream_error(request, error)
    return render(request, DETAIL, {"experiment": experiment, **_tab_area_context(request, experiment_id, tab)})


@require_GET
@require_permission(roles.VIEW)
def experiment_tab(request, experiment_id: str, tab: str):
    if tab not in dict(TABS):
        raise Http404("No such tab")
    return render(request, f"{DETAIL}#tab_area", _tab_area_context(request, experiment_id, tab))


def _tab_area_context(request, experiment_id: str, tab: str) -> dict:
    """The tab bar and one tab's content; an upstream failure fills the tab with a retry box
    and leaves the tab bar working."""
    context = {"experiment_id": experiment_id, "tabs": TABS, "tab": tab, "tab_template": f"{DETAIL}#tab_{tab}"}
    try:
        experiment = selectors.experiment_get(experiment_id)
        context.update(experiment=experiment, **_tab_context(request, experiment, tab))
    except gateway.NotFound as error:
        raise Http404(error.message) from None
    except gateway.UpstreamError as error:
        retry_url = reverse("experiment_tab", args=[experiment_id, tab]) + "?" + request.GET.urlencode()
        context.update(problem=upstream_problem(error), tab_template="_upstream_error.html",
                       retry_target="#tab-area", retry_url=retry_url)
    return context


@require_GET
@require_permission(roles.VIEW)
def version_compare(request, experiment_id: str):
    form = VersionCompareForm(request.GET)
    if not form.is_valid():
        return render(request, f"{DETAIL}#compare", {"compare_form": form})
    try:
        versions = {v.version: v for v in selectors.experiment_versions(experiment_id)}
    except gateway.UpstreamError as error:
        return upstream_error(request, error)
    a, b = form.cleaned_data["a"], form.cleaned_data["b"]
    missing = [n for n in (a, b) if n not in versions]
    if missing:
        form.add_error(None, f"There is no version {missing[0]} of this experiment.")
        return render(request, f"{DETAIL}#compare", {"compare_form": form})
    old, new = versions[min(a, b)], versions[max(a, b)]
    rows = readable.config_diff(old.flag_config, new.flag_config, _deployment_labels())
    return render(request, f"{DETAIL}#compare", {
        "compare_form": form, "old": old, "new": new, "diff_rows": rows,
        "changed_count": sum(r.changed for r in rows),
    })


def _deployment_labels() -> dict[str, str]:
    return {id_: d.label for id_, d in selectors.deployments_by_id().items()}


def _tab_context(request, experiment: gateway.Experiment, tab: str) -> dict:
    builders = {
        "overview": _overview,
        "variants": _variants,
        "inclusions": _inclusions,
        "deployments": _deployments,
        "versions": _versions,
        "activity": _activity,
    }
    return builders[tab](request, experiment)


def _overview(request, experiment):
    return {
        "config_rows": readable.config_rows(experiment.raw, _deployment_labels()),
        "allocation": readable.allocation(experiment),
        "segments": [readable.segment_in_words(s) for s in experiment.target_segments],
    }


def _variants(request, experiment):
    variants = selectors.experiment_variants(experiment.id)
    shares = readable.variant_shares({v.key: v.rollout_weight or 0 for v in variants})
    return {"variants": [(v, shares.get(v.key, 0.0), readable.pretty_json(v.payload)) for v in variants]}


def _inclusions(request, experiment):
    form = InclusionSearchForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    keys = [str(v.get("key")) for v in experiment.variants]
    variant = data.get("variant") if data.get("variant") in keys else (keys[0] if keys else None)
    counts = [(key, len(selectors.variant_inclusions(experiment.id, key))) for key in keys]
    ids = selectors.variant_inclusions(experiment.id, variant) if variant else []
    q = (data.get("q") or "").strip()
    matching = [i for i in ids if q.casefold() in i.casefold()] if q else ids
    page = Paginator(matching, INCLUSIONS_PER_PAGE).get_page(data.get("page") or 1)
    return {"variant": variant, "counts": counts, "cap": INCLUSION_CAP, "inclusion_page": page,
            "q": q, "total": len(ids), "matching": len(matching)}


def _deployments(request, experiment):
    return {"experiment_deployments": selectors.experiment_deployments(experiment.id)}


def _versions(request, experiment):
    versions = selectors.experiment_versions(experiment.id)  # newest first
    timeline = []
    for newer, older in zip(versions, versions[1:] + [None], strict=True):
        changed = [r.label for r in readable.config_diff(older.flag_config, newer.flag_config) if r.changed] \
            if older else ["created"]
        timeline.append((newer, changed))
    default_b = versions[0].version if versions else 1
    default_a = versions[1].version if len(versions) > 1 else default_b
    return {"timeline": timeline, "compare_form": VersionCompareForm(initial={"a": default_a, "b": default_b}),
            "version_numbers": [v.version for v in versions]}


def _activity(request, experiment):
    return {"activity": audit_selectors.experiment_activity(experiment.id)}
