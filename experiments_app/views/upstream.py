"""How a page or fragment tells people that the upstream is in trouble (never a 500)."""

from django.http import Http404
from django.shortcuts import render

from experiments_app import gateway


def upstream_problem(error: gateway.UpstreamError) -> str:
    if isinstance(error, gateway.BudgetExhausted):
        return "The portal has used today's request budget for this project. It resets at midnight UTC."
    if isinstance(error, gateway.RateLimited):
        wait = f" for about {round(error.retry_after)} s" if error.retry_after else ""
        return f"The Experiment Management API is rate limiting the portal{wait}. Try again in a moment."
    if isinstance(error, gateway.UpstreamTimeout):
        return "The Experiment Management API did not answer in time."
    if isinstance(error, gateway.Unauthorized | gateway.Forbidden):
        return ("The Experiment Management API refused the portal's API key "
                f"({error.status or 'auth'}). An admin needs to check the portal's upstream key.")
    if isinstance(error, gateway.UpstreamUnavailable):
        return "The Experiment Management API is unavailable right now."
    return f"The Experiment Management API answered with an error: {error.message}"


def upstream_error(request, error: gateway.UpstreamError):
    """The error box with a retry button: a fragment for htmx, else a whole page (502)."""
    if isinstance(error, gateway.NotFound):
        raise Http404(error.message)
    context = {"problem": upstream_problem(error), "retry_url": request.get_full_path()}
    if request.htmx:
        return render(request, "_upstream_error.html", context)
    return render(request, "experiments_app/upstream_error_page.html", context, status=502)
