import pytest
from django.urls import reverse

from experiments_app import roles
from experiments_app.audit import actions
from experiments_app.audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_signing_in_is_recorded(client, viewer):
    response = client.post(reverse("login"), {"username": viewer.username, "password": PASSWORD},
                           REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest-browser")

    assert response.status_code == 302
    [entry] = entries(actions.LOGIN)
    assert (entry.actor_label, entry.actor_user_id) == (viewer.username, viewer.pk)
    assert entry.detail == {"ip": "10.1.2.3", "user_agent": "pytest-browser"}


def test_a_failed_sign_in_is_recorded_without_the_password(client, viewer):
    client.post(reverse("login"), {"username": viewer.username, "password": "wrong-password"})

    [entry] = entries(actions.LOGIN_FAILED)
    assert entry.actor_label == "anonymous" and entry.detail["username"] == viewer.username
    assert "wrong-password" not in str(entry.detail)


def test_role_changes_are_recorded(viewer):
    viewer.groups.set([roles.role_group("Approver")])

    changes = entries(actions.ROLE_CHANGED)
    assert changes[-1].detail == {"user": viewer.username, "change": "add", "groups": ["Approver"]}
    assert any(e.detail["change"] == "remove" and e.detail["groups"] == [] for e in changes)


def test_role_changes_name_the_admin_who_made_them(viewer, admin_user):
    from experiments_app.audit.services import audit_acting_as

    with audit_acting_as(admin_user):
        viewer.groups.set([roles.role_group("Editor")])

    assert entries(actions.ROLE_CHANGED)[-1].actor_label == admin_user.username
