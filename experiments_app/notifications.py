"""E-mail about change requests: to eligible approvers when one is created, to the requester on
each review and outcome. Sent after the transaction commits; a mail failure is logged, never
raised into the change itself."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse

logger = logging.getLogger(__name__)


def _link(change_request) -> str:
    return f"{settings.PORTAL_BASE_URL}{reverse('change_request_detail', args=[change_request.pk])}"


def _send(subject: str, body: str, recipients: list[str]) -> None:
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return
    try:
        send_mail(subject, body, None, recipients)
    except Exception:  # mail is a courtesy: the request itself already happened
        logger.exception("could not send %r to %d recipient(s)", subject, len(recipients))


def eligible_approvers(change_request):
    users = get_user_model().objects.filter(is_active=True).exclude(pk=change_request.requester_id)
    users = users.filter(
        Q(groups__permissions__codename="approve_change") | Q(user_permissions__codename="approve_change")
        | Q(is_superuser=True)
    )
    if change_request.approver_group_id:
        users = users.filter(groups=change_request.approver_group_id)
    return users.distinct()


def request_created(change_request) -> None:
    _send(
        f"[Experiment Portal] Review needed: {change_request.title}",
        f"{change_request.requester} asks for: {change_request.title}\n\nWhy: {change_request.reason}\n\n"
        f"It needs {change_request.required_approvals} approval(s). Review it at {_link(change_request)}\n",
        [u.email for u in eligible_approvers(change_request)],
    )


def request_reviewed(change_request, reviewer, verdict: str) -> None:
    _send(
        f"[Experiment Portal] {reviewer} {verdict} #{change_request.pk}: {change_request.title}",
        f"{reviewer} {verdict} your request “{change_request.title}”.\n\n{_link(change_request)}\n",
        [change_request.requester.email],
    )


def request_outcome(change_request) -> None:
    status = change_request.get_status_display()
    detail = f"\n\n{change_request.error}" if change_request.error else ""
    _send(
        f"[Experiment Portal] {status}: #{change_request.pk} {change_request.title}",
        f"Your request “{change_request.title}” is now: {status}.{detail}\n\n{_link(change_request)}\n",
        [change_request.requester.email],
    )
