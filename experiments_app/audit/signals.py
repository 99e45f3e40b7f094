"""Auth events reach the portal only as signals; each receiver just records the entry."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from experiments_app.audit import actions
from experiments_app.audit.services import audit_current_actor, audit_record


@receiver(user_logged_in, dispatch_uid="audit.login")
def _login(sender, request, user, **kwargs):
    audit_record(action=actions.LOGIN, actor=user, detail=_client(request))


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    audit_record(action=actions.LOGIN_FAILED, actor="anonymous",
                 detail={"username": str(credentials.get("username", ""))[:150], **_client(request)})


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="audit.role_changed")
def _groups_changed(sender, instance, action, pk_set, **kwargs):
    if action in ("post_add", "post_remove", "post_clear") and not kwargs.get("reverse"):
        audit_record(action=actions.ROLE_CHANGED, actor=audit_current_actor("system:roles"),
                     detail={"user": instance.get_username(), "change": action.removeprefix("post_"),
                             "groups": sorted(instance.groups.values_list("name", flat=True))})


def _client(request) -> dict:
    if request is None:
        return {}
    return {"ip": request.META.get("REMOTE_ADDR", ""), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200]}
