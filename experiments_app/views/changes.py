"""Forms that propose changes (each becomes a change request), and the request pages."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from experiments_app import change_requests, forms, gateway, plans, readable, roles, selectors
from experiments_app.models import ChangeRequest, Policy, Status, Tier
from experiments_app.permissions import require_permission
from experiments_app.views.upstream import upstream_error, upstream_problem

FORM_PAGE = "experiments_app/change_form.html"
DETAIL = "experiments_app/change_request.html"


def _go(request, url):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _submit(request, form, *, kind: str, title: str, plan: list[dict], experiment_id: str = "",
            context: dict | None = None):
    """Creates the change request, or shows the form again with what went wrong."""
    try:
        change_request = change_requests.change_request_create(
            requester=request.user, kind=kind, title=title, reason=form.cleaned_data["reason"], plan=plan,
            experiment_id=experiment_id)
    except ValidationError as error:
        for message in error.messages:
            form.add_error(None, message)
    except gateway.UpstreamError as error:
        form.add_error(None, upstream_problem(error) + " Nothing was requested; try again.")
    else:
        if change_request.required_approvals == 0:
            messages.success(request, "Recorded and applied without review, as policy allows for this change.")
        else:
            messages.success(request, f"Change request #{change_request.pk} needs "
                                      f"{change_request.required_approvals} approval(s).")
        return _go(request, change_request_url(change_request))
    return render(request, FORM_PAGE, {"form": form, **(context or {})})


def change_request_url(change_request) -> str:
    return reverse("change_request_detail", args=[change_request.pk])


def _experiment_or_error(request, experiment_id):
    try:
        return selectors.experiment_get(experiment_id), None
    except gateway.UpstreamError as error:
        return None, upstream_error(request, error)


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def experiment_edit(request, experiment_id: str):
    """Proposes settings; with ?request=N, the requester revises that pending request instead."""
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    revising = None
    if request.GET.get("request"):
        revising = get_object_or_404(ChangeRequest, pk=request.GET["request"], experiment_id=experiment_id,
                                     kind="edit_experiment")
        if revising.requester != request.user:
            raise PermissionDenied("Only the requester can edit a request.")
    form = forms.ExperimentEditForm(request.POST or None, experiment=experiment,
                                    proposed=revising.plan[0]["fields"] if revising else None)
    context = {"experiment": experiment, "title": f"Revise request #{revising.pk}" if revising else "Edit settings",
               "submit": "Save the revised request" if revising else "Request this change", "revising": revising}
    if request.method == "POST" and form.is_valid():
        fields = form.changed_fields()
        if not fields:
            form.add_error(None, "Nothing changed.")
        elif revising:
            try:
                change_requests.change_request_edit(actor=request.user, change_request=revising, reason=form.cleaned_data["reason"],
                                                    plan=[{"op": "update_experiment", "fields": fields}])
            except ValidationError as error:
                form.add_error(None, " ".join(error.messages))
            except gateway.UpstreamError as error:
                form.add_error(None, upstream_problem(error))
            else:
                messages.success(request, "Request revised: approvals given before no longer count.")
                return _go(request, change_request_url(revising))
        else:
            plan = [{"op": "update_experiment", "fields": fields}]
            return _submit(request, form, kind="edit_experiment", plan=plan, experiment_id=experiment_id,
                           title=f"{experiment.key}: {plans.describe(plan[0])}", context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def segment_edit(request, experiment_id: str, index: int | None = None):
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    if index is not None and index >= len(experiment.target_segments):
        raise Http404("No such segment")
    form = forms.SegmentForm(request.POST or None, experiment=experiment, index=index)
    context = {"experiment": experiment, "title": "Add a target segment" if index is None else "Edit target segment",
               "submit": "Request this change", "segment_form": True}
    if request.method == "POST" and form.is_valid():
        plan = [{"op": "update_experiment", "fields": {"targetSegments": form.segments()}}]
        return _submit(request, form, kind="edit_segments", plan=plan, experiment_id=experiment_id,
                       title=f"{experiment.key}: {context['title'].lower()} “{form.cleaned_data['name']}”",
                       context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_POST
@require_permission(roles.REQUEST)
def segment_remove(request, experiment_id: str, index: int):
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    if index >= len(experiment.target_segments):
        raise Http404("No such segment")
    form = forms.ReasonMixin(request.POST)
    segments = [s for n, s in enumerate(experiment.target_segments) if n != index]
    name = experiment.target_segments[index].get("name", f"Segment {index + 1}")
    context = {"experiment": experiment, "title": f"Remove target segment “{name}”", "submit": "Request removal"}
    if form.is_valid():
        return _submit(request, form, kind="edit_segments", experiment_id=experiment_id,
                       plan=[{"op": "update_experiment", "fields": {"targetSegments": segments}}],
                       title=f"{experiment.key}: remove target segment “{name}”", context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def variant_edit(request, experiment_id: str, variant_key: str | None = None):
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    try:
        variants = {v.key: v for v in selectors.experiment_variants(experiment_id)}
    except gateway.UpstreamError as error:
        return upstream_error(request, error)
    if variant_key is not None and variant_key not in variants:
        raise Http404("No such variant")
    variant = variants.get(variant_key)
    form = forms.VariantForm(request.POST or None, existing_keys=list(variants), variant=variant)
    context = {"experiment": experiment, "title": f"Edit variant “{variant_key}”" if variant else "Add a variant",
               "submit": "Request this change"}
    if request.method == "POST" and form.is_valid():
        op = form.operation()
        if op is None:
            form.add_error(None, "Nothing changed.")
        else:
            return _submit(request, form, kind="variant", plan=[op], experiment_id=experiment_id,
                           title=f"{experiment.key}: {plans.describe(op)}", context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_POST
@require_permission(roles.REQUEST)
def variant_remove(request, experiment_id: str, variant_key: str):
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    form = forms.ReasonMixin(request.POST)
    op = {"op": "delete_variant", "key": variant_key}
    context = {"experiment": experiment, "title": f"Remove variant “{variant_key}”", "submit": "Request removal"}
    if form.is_valid():
        return _submit(request, form, kind="variant", plan=[op], experiment_id=experiment_id,
                       title=f"{experiment.key}: {plans.describe(op)}", context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def inclusions_edit(request, experiment_id: str):
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    keys = [str(v.get("key")) for v in experiment.variants]
    form = forms.InclusionsForm(request.POST or None, variant_keys=keys,
                                initial={"variant": request.GET.get("variant")})
    context = {"experiment": experiment, "title": "Pin or unpin ids", "submit": "Request this change"}
    if request.method == "POST" and form.is_valid():
        op = form.operation()
        return _submit(request, form, kind="inclusions", plan=[op], experiment_id=experiment_id,
                       title=f"{experiment.key}: {plans.describe(op)}", context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def deployments_edit(request, experiment_id: str):
    experiment, failure = _experiment_or_error(request, experiment_id)
    if failure:
        return failure
    try:
        deployments = selectors.deployments_by_id()
    except gateway.UpstreamError as error:
        return upstream_error(request, error)
    form = forms.DeploymentsForm(request.POST or None, deployments=deployments, assigned=experiment.deployments,
                                 initial={"action": request.GET.get("action", "add")})
    context = {"experiment": experiment, "title": "Add or remove a deployment", "submit": "Request this change"}
    if request.method == "POST" and form.is_valid():
        op = form.operation()
        label = deployments[form.cleaned_data["deployment"]].label
        verb = "add deployment" if op["op"] == "add_deployments" else "remove deployment"
        return _submit(request, form, kind="deployments", plan=[op], experiment_id=experiment_id,
                       title=f"{experiment.key}: {verb} “{label}”", context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def experiment_create(request):
    try:
        deployments = selectors.deployments_by_id()
    except gateway.UpstreamError as error:
        return upstream_error(request, error)
    form = forms.ExperimentCreateForm(request.POST or None, deployments=deployments)
    context = {"title": "New experiment", "submit": "Request this experiment"}
    if request.method == "POST" and form.is_valid():
        op = form.operation()
        return _submit(request, form, kind="create_experiment", plan=[op], title=plans.describe(op), context=context)
    return render(request, FORM_PAGE, {"form": form, **context})


# --- Request pages -----------------------------------------------------------------------------

def _detail_context(request, change_request: ChangeRequest) -> dict:
    allowed, why_not = change_requests.can_approve(request.user, change_request)
    approvals = list(change_requests.current_approvals(change_request).select_related("approver"))
    context = {
        "cr": change_request,
        "steps": [plans.describe(op) for op in change_request.plan],
        "approvals": approvals,
        "void_approvals": change_request.approvals.exclude(plan_hash=change_request.plan_hash).count(),
        "can_approve": allowed,
        "why_not": why_not,
        "is_requester": request.user == change_request.requester,
        "comments": change_request.comments.select_related("author"),
        "history": change_request.status_changes.select_related("actor"),
        "review_form": forms.ReviewForm(initial={"plan_hash": change_request.plan_hash}),
        "comment_form": forms.CommentForm(),
    }
    if change_request.experiment_id and change_request.kind != "bulk_job":
        context.update(_diff_context(change_request))
    return context


def _diff_context(change_request: ChangeRequest) -> dict:
    """Proposed against current, field by field; for a conflict, snapshot / now / proposed."""
    if change_request.status == Status.APPLIED:  # what it changed, not what differs now
        before = dict(change_request.snapshot)
        rows = readable.config_diff(before, plans.proposed_config(before, change_request.plan))
        return {"diff_rows": [r for r in rows if r.changed], "diff_title": "What it changed"}
    try:
        current = selectors.experiment_get(change_request.experiment_id).raw
        labels = {i: d.label for i, d in selectors.deployments_by_id().items()}
    except gateway.UpstreamError as error:
        return {"diff_problem": upstream_problem(error)}
    proposed = plans.proposed_config(current, change_request.plan)
    rows = [r for r in readable.config_diff(current, proposed, labels) if r.changed]
    context = {"diff_rows": rows, "diff_title": "Proposed against current"}
    if change_request.status == Status.CONFLICT:
        conflict = change_request.result.get("conflict", {})
        proposed_from_snapshot = plans.proposed_config(
            {f: c["snapshot"] for f, c in conflict.items()}, change_request.plan)
        context["conflict_rows"] = [
            (readable.field_label(f), readable.value_in_words(f, c["snapshot"], labels),
             readable.value_in_words(f, c["now"], labels),
             readable.value_in_words(f, proposed_from_snapshot.get(f), labels))
            for f, c in conflict.items()
        ]
    return context


def _load(pk: int) -> ChangeRequest:
    return get_object_or_404(ChangeRequest.objects.select_related("requester", "approver_group"), pk=pk)


@require_permission(roles.VIEW)
def change_request_detail(request, pk: int):
    change_request = _load(pk)
    template = f"{DETAIL}#panel" if request.htmx and not request.htmx.history_restore_request else DETAIL
    return render(request, template, _detail_context(request, change_request))


def _act(request, pk: int, action):
    """Runs a review action; answers with the refreshed panel (htmx) or the page."""
    change_request = _load(pk)
    try:
        action(change_request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    except gateway.UpstreamError as error:
        messages.error(request, upstream_problem(error))
    if request.htmx:
        return render(request, f"{DETAIL}#panel", _detail_context(request, _load(pk)))
    return redirect("change_request_detail", pk=pk)


@require_POST
@require_permission(roles.APPROVE)
def change_request_approve(request, pk: int):
    form = forms.ReviewForm(request.POST)
    form.is_valid()

    def approve(change_request):
        change_requests.change_request_approve(approver=request.user, change_request=change_request,
                                               comment=form.cleaned_data.get("comment", ""),
                                               plan_hash=form.cleaned_data.get("plan_hash") or None)
        messages.success(request, "Approved.")

    return _act(request, pk, approve)


@require_POST
@require_permission(roles.APPROVE)
def change_request_reject(request, pk: int):
    form = forms.ReviewForm(request.POST)
    form.is_valid()

    def reject(change_request):
        change_requests.change_request_reject(approver=request.user, change_request=change_request,
                                              comment=form.cleaned_data.get("comment", ""))
        messages.success(request, "Rejected.")

    return _act(request, pk, reject)


@require_POST
@require_permission(roles.REQUEST)
def change_request_cancel(request, pk: int):
    def cancel(change_request):
        change_requests.change_request_cancel(actor=request.user, change_request=change_request)
        messages.success(request, "Cancelled.")

    return _act(request, pk, cancel)


@require_POST
@require_permission(roles.VIEW)
def change_request_comment(request, pk: int):
    form = forms.CommentForm(request.POST)

    def comment(change_request):
        if not form.is_valid():
            raise ValidationError("Write something first.")
        change_requests.change_request_comment(author=request.user, change_request=change_request,
                                               body=form.cleaned_data["body"])

    return _act(request, pk, comment)


@require_POST
@require_permission(roles.REQUEST)
def change_request_rebase(request, pk: int):
    change_request = _load(pk)
    try:
        rebased = change_requests.change_request_rebase(actor=request.user, change_request=change_request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _go(request, change_request_url(change_request))
    except gateway.UpstreamError as error:
        messages.error(request, upstream_problem(error))
        return _go(request, change_request_url(change_request))
    messages.success(request, f"Rebased into request #{rebased.pk} against the upstream as it is now.")
    return _go(request, change_request_url(rebased))


@require_permission(roles.VIEW)
def approvals(request):
    view = request.GET.get("view", "waiting")
    form = forms.ChangeRequestFilterForm(request.GET)
    requests = ChangeRequest.objects.select_related("requester").annotate(
        approval_count=Count("approvals", filter=Q(approvals__plan_hash=F("plan_hash"))))
    if view == "waiting":
        requests = requests.filter(status=Status.PENDING).exclude(requester=request.user)
        if not request.user.has_perm(roles.APPROVE):
            requests = requests.none()
        requests = requests.exclude(approvals__approver=request.user, approvals__plan_hash=F("plan_hash"))
        requests = requests.filter(Q(approver_group__isnull=True) | Q(approver_group__in=request.user.groups.all()))
    elif view == "mine":
        requests = requests.filter(requester=request.user)
    if form.is_valid():
        if form.cleaned_data["status"]:
            requests = requests.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["experiment"]:
            term = form.cleaned_data["experiment"]
            requests = requests.filter(Q(experiment_key__icontains=term) | Q(experiment_id=term))
    page = Paginator(requests.distinct().order_by("-created_at", "-id"), 50).get_page(request.GET.get("page"))
    context = {"view": view, "form": form, "page": page,
               "views": [("waiting", "Waiting for me"), ("mine", "My requests"), ("all", "All")]}
    template = "experiments_app/approvals.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@require_permission(roles.ADMINISTER)
def policy(request):
    tiers = [change_requests.policy_for(tier) for tier in Tier.values]
    if request.method == "POST":
        policy_row = get_object_or_404(Policy, pk=request.POST.get("policy"))
        form = forms.PolicyForm(request.POST)
        if form.is_valid():
            change_requests.policy_update(actor=request.user, policy=policy_row, **form.cleaned_data)
            messages.success(request, f"Policy for “{policy_row.get_tier_display()}” saved.")
            return redirect("policy")
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    rows = [(p, forms.PolicyForm(initial={"required_approvals": p.required_approvals,
                                          "approver_group": p.approver_group_id})) for p in tiers]
    return render(request, "experiments_app/policy.html", {"rows": rows})
