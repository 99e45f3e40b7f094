from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from experiments_app import change_requests, gateway, roles
from experiments_app.bulk import selectors, services
from experiments_app.bulk.forms import BulkJobForm, ReviseIdsForm
from experiments_app.bulk.models import BulkJob, JobStatus, Kind
from experiments_app.models import Status as RequestStatus
from experiments_app.models import Tier
from experiments_app.permissions import require_permission

NEW = "bulk/job_new.html"
REVISE = "bulk/job_revise.html"
DETAIL = "bulk/job_detail.html"
LIST = "bulk/job_list.html"
POLL_DONE = 286  # htmx stops polling on this status


def _job(job_id: int) -> BulkJob:
    try:
        return selectors.bulk_job_get(job_id)
    except BulkJob.DoesNotExist:
        raise Http404("No such bulk job") from None


def _go(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _previewed(request, form, make, success: str):
    """Run ``make`` (a service answering ``(job or None, preview)``): on a job, go to its page;
    otherwise the refusal or the error stays on the form. Returns (response or None, preview)."""
    try:
        job, preview = make()
    except ValidationError as error:
        for message in error.messages:
            form.add_error(None, message)
    except gateway.UpstreamError as error:
        form.add_error(None, f"The experiment service could not be read: {error.message}")
    else:
        if job is None:
            return None, preview
        messages.success(request, success)
        return _go(request, job.get_absolute_url()), preview
    return None, None


@require_GET
@vary_on_headers("HX-Request")
@require_permission(roles.VIEW)
def job_list(request):
    mine = request.GET.get("mine") == "1"
    status = request.GET.get("status", "")
    if status not in JobStatus.values:
        status = ""
    page = Paginator(selectors.bulk_job_list(mine_of=request.user if mine else None, status=status), 50) \
        .get_page(request.GET.get("page"))
    jobs = list(page)
    rows = [(job, selectors.status_label(job), progress)
            for job, progress in zip(jobs, selectors.bulk_jobs_progress(jobs))]
    query = "&".join(filter(None, ["mine=1" if mine else "", f"status={status}" if status else ""]))
    return render(request, LIST, {"page": page, "rows": rows, "mine": mine, "status": status,
                                  "statuses": JobStatus.choices, "query": query})


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def job_new(request):
    form = BulkJobForm(request.POST or None, request.FILES or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data

        def create():
            if data["kind"] == Kind.SWEEP:  # many reads: a worker previews it, the job page shows how far
                return services.bulk_sweep_draft(
                    requester=request.user, ids=form.parsed.ids, title=data.get("title") or "",
                    reason=data["reason"], sweep_filter=data.get("sweep_filter") or "",
                    sweep_value=data.get("sweep_value") or ""), None
            target = services.experiment_resolve(data["experiment"])
            source = None
            if data["kind"] == Kind.COPY:
                source = services.experiment_resolve(data["source_experiment"])
            return services.bulk_job_create(
                requester=request.user, kind=data["kind"], ids=form.parsed.ids if form.parsed else [],
                title=data.get("title") or "", reason=data["reason"],
                experiment_id=target.id if target else "", variant_key=data.get("variant_key") or "",
                source_experiment_id=source.id if source else "",
                source_variant_key=data.get("source_variant_key") or "",
                sweep_filter=data.get("sweep_filter") or "", sweep_value=data.get("sweep_value") or "")

        done, preview = _previewed(request, form, create,
                                   "Reading every matching variant: the preview appears here when it is ready."
                                   if data["kind"] == Kind.SWEEP
                                   else "Preview ready: check the numbers, then submit it for review.")
        if done:
            return done
    context = {"form": form, "parsed": form.parsed, "preview": preview.as_dict() if preview else None}
    return render(request, f"{NEW}#job_form" if request.htmx else NEW, context)


def _detail_context(request, job: BulkJob) -> dict:
    progress = selectors.bulk_job_progress(job)
    return {
        "job": job,
        "status_label": selectors.status_label(job),
        "progress": progress,
        "preview": job.preview,
        "tier": _tier_text(job),
        "targets": selectors.bulk_job_targets(job),
        "failed_items": selectors.bulk_job_failed_items(job) if progress.failed else [],
        "can_submit": job.status == JobStatus.DRAFT and request.user == job.requester,
        "draft_hours": f"{settings.BULK_DRAFT_MAX_AGE_HOURS:g}",
        "can_cancel": (job.status in (JobStatus.PREVIEWING, JobStatus.DRAFT, JobStatus.REVIEW)
                       and request.user == job.requester)
        or (job.status in (JobStatus.QUEUED, JobStatus.RUNNING) and not job.cancel_requested
            and (request.user == job.requester or request.user.has_perm(roles.APPROVE))),
        "can_revise": job.status == JobStatus.REVIEW and request.user == job.requester
        and job.kind in services.REVISABLE_KINDS and job.change_request.status == RequestStatus.PENDING,
        "can_undo": job.is_finished and request.user.has_perm(roles.REQUEST) and progress.applied > 0,
        "undo_jobs": job.undo_jobs.all(),
        # Poll every second while a worker is on it; every 5 s while in review, so that a page left
        # open starts moving once the last approval comes in.
        "polling": job.status in (JobStatus.PREVIEWING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.REVIEW),
        "reading": job.preview.get("reading") if job.status == JobStatus.PREVIEWING else None,
        "poll_every": "5s" if job.status == JobStatus.REVIEW else "1s",
    }


def _tier_text(job: BulkJob) -> str:
    tier = job.change_request.tier if job.change_request else job.preview.get("tier")
    if not tier:
        return ""
    approvals = job.change_request.required_approvals if job.change_request \
        else change_requests.policy_for(tier).required_approvals
    return f"{Tier(tier).label} — {approvals} approval{'s' if approvals != 1 else ''} needed"


@require_GET
@require_permission(roles.VIEW)
def job_detail(request, job_id: int):
    job = _job(job_id)
    return render(request, DETAIL, _detail_context(request, job))


@require_GET
@require_permission(roles.VIEW)
def job_progress(request, job_id: int):
    job = _job(job_id)
    if request.GET.get("from") == JobStatus.PREVIEWING and job.status != JobStatus.PREVIEWING:
        return HttpResponse(headers={"HX-Refresh": "true"})  # the preview is in: show the whole page
    context = _detail_context(request, job)
    # The bar, and the variants table beside it swapped out of band, so both stay current.
    response = HttpResponse(render_to_string(f"{DETAIL}#status_panel", context, request)
                            + render_to_string(f"{DETAIL}#targets_panel", {**context, "oob": True}, request))
    if not context["polling"]:
        response.status_code = POLL_DONE
    return response


@require_http_methods(["GET", "POST"])
@require_permission(roles.REQUEST)
def job_revise(request, job_id: int):
    """A new id list for a job in review (its requester only): approvals given so far are void."""
    job = _job(job_id)
    if request.user != job.requester:
        raise PermissionDenied("Only the requester can edit this job.")
    form = ReviseIdsForm(request.POST or None, request.FILES or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        done, preview = _previewed(
            request, form, lambda: services.bulk_job_revise(actor=request.user, job=job, ids=form.parsed.ids,
                                                            reason=form.cleaned_data["reason"]),
            "The id list was replaced: approvals given so far no longer count.")
        if done:
            return done
    context = {"job": job, "form": form, "parsed": form.parsed, "preview": preview.as_dict() if preview else None}
    return render(request, f"{REVISE}#revise_form" if request.htmx else REVISE, context)


@require_POST
@require_permission(roles.REQUEST)
def job_submit(request, job_id: int):
    job = _job(job_id)
    try:
        change_request = services.bulk_job_submit(actor=request.user, job=job)
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        if change_request.required_approvals:
            messages.success(request, f"Submitted for review: it needs {change_request.required_approvals} "
                                      "approval(s) before it runs.")
        else:
            messages.success(request, "Submitted: no approval is needed, so it starts now.")
    return _go(request, job.get_absolute_url())


@require_POST
@require_permission(roles.VIEW)
def job_cancel(request, job_id: int):
    job = _job(job_id)
    try:
        job = services.bulk_job_cancel(actor=request.user, job=job)
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, "Cancelled." if job.status == JobStatus.CANCELLED
                         else "Cancelling: the worker stops after the chunk it is on.")
    return _go(request, job.get_absolute_url())


@require_POST
@require_permission(roles.REQUEST)
def job_undo(request, job_id: int):
    job = _job(job_id)
    try:
        undo = services.bulk_job_undo(actor=request.user, job=job)  # the worker reads the variants
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _go(request, job.get_absolute_url())
    messages.success(request, "Reading the variants for the undo job: its preview appears here when it is ready.")
    return _go(request, undo.get_absolute_url())


@require_GET
@require_permission(roles.VIEW)
def job_report(request, job_id: int):
    job = _job(job_id)
    response = StreamingHttpResponse(selectors.bulk_job_report_rows(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bulk-job-{job.pk}.csv"'
    return response

