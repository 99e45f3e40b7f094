from django.conf import settings
from django.contrib.messages import get_messages
from django.template.loader import render_to_string

from experiments_app import gateway


class HtmxMessagesMiddleware:
    """Carries Django messages into htmx responses as an out-of-band swap of #messages.

    Full pages render messages in base.html; an htmx fragment would otherwise leave them
    queued until the next full page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or request.htmx.boosted:
            return response
        if response.streaming or "HX-Redirect" in response or 300 <= response.status_code < 400:
            return response
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        messages = list(get_messages(request))
        if messages:
            response.write(render_to_string("_messages.html", {"messages": messages, "oob": True}))
        return response


class UpstreamRetryBudgetMiddleware:
    """A person waiting on a page gets an answer within seconds: upstream calls made while
    serving a web request retry for at most UPSTREAM_WEB_RETRY_SECONDS (workers keep the longer
    UPSTREAM_MAX_RETRY_SECONDS)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with gateway.retry_budget(settings.UPSTREAM_WEB_RETRY_SECONDS):
            return self.get_response(request)
