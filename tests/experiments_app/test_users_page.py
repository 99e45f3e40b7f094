"""The Users page: admins add users, change roles, deactivate and reactivate; nobody else can;
the last admin cannot be demoted or deactivated; every change is in the audit log."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from experiments_app import roles
from experiments_app.audit import actions
from experiments_app.audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def _sign_in(username: str, password: str) -> Client | None:
    """Through the real login form; the signed-in client, or None when refused."""
    browser = Client()
    response = browser.post(reverse("login"), {"username": username, "password": password})
    return browser if response.status_code == 302 else None


def test_only_admins_see_and_use_the_page(client, approver, viewer, admin_user):
    for user in (approver, viewer):
        client.force_login(user)
        assert client.get(reverse("users")).status_code == 403
        assert client.post(reverse("user_role", args=[viewer.pk]), {"role": "Admin"}).status_code == 403
        assert client.post(reverse("user_add"), {"username": "x", "role": "Admin", "password": "p"}).status_code == 403
        assert client.post(reverse("user_active", args=[admin_user.pk]), {"active": "0"}).status_code == 403
        assert 'href="/users/"' not in client.get(reverse("bulk_jobs")).content.decode()
    assert roles.user_roles(viewer) == ["Viewer"] and get_user_model().objects.get(pk=admin_user.pk).is_active
    client.force_login(admin_user)
    page = client.get(reverse("users")).content.decode()
    assert 'href="/users/"' in page and viewer.username in page and approver.username in page


def test_an_admin_adds_a_user_who_can_then_sign_in(client, admin_user):
    client.force_login(admin_user)
    weak = client.post(reverse("user_add"), {"username": "nina", "role": "Editor", "password": "nina"})
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    assert not get_user_model().objects.filter(username="nina").exists()
    added = client.post(reverse("user_add"), {"username": "nina", "email": "nina@example.com", "role": "Editor",
                                              "password": "correct horse battery"})
    assert added.status_code == 302
    again = client.post(reverse("user_add"), {"username": "NINA", "role": "Viewer", "password": "another long one"})
    assert again.status_code == 400 and "already exists" in again.content.decode()
    nina = get_user_model().objects.get(username="nina")
    assert roles.user_roles(nina) == ["Editor"] and not nina.is_staff
    [created] = _entries(actions.USER_CREATED)
    assert created.actor_label == admin_user.username and created.detail == {"user": "nina", "role": "Editor"}
    assert _entries(actions.ROLE_CHANGED)[-1].actor_label == admin_user.username
    assert _sign_in("nina", "correct horse battery")


def test_roles_change_and_the_last_admin_stays(client, admin_user, viewer):
    client.force_login(admin_user)
    client.post(reverse("user_role", args=[viewer.pk]), {"role": "Admin"})
    viewer.refresh_from_db()
    assert roles.user_roles(viewer) == ["Admin"] and viewer.is_staff
    assert _entries(actions.ROLE_CHANGED)[-1].actor_label == admin_user.username
    client.post(reverse("user_role", args=[viewer.pk]), {"role": "Viewer"})
    viewer.refresh_from_db()
    assert roles.user_roles(viewer) == ["Viewer"] and not viewer.is_staff

    refused = client.post(reverse("user_role", args=[admin_user.pk]), {"role": "Editor"}, follow=True)
    assert "the last active admin" in refused.content.decode()
    assert roles.user_roles(admin_user) == ["Admin"]
    bogus = client.post(reverse("user_role", args=[viewer.pk]), {"role": "Superuser"}, follow=True)
    assert "Choose one of the roles." in bogus.content.decode() and roles.user_roles(viewer) == ["Viewer"]


def test_deactivated_users_are_signed_out_and_cannot_sign_in_until_reactivated(client, admin_user, viewer):
    signed_in = _sign_in(viewer.username, PASSWORD)
    assert signed_in.get(reverse("bulk_jobs")).status_code == 200
    client.force_login(admin_user)
    client.post(reverse("user_active", args=[viewer.pk]), {"active": "0"})
    viewer.refresh_from_db()
    assert not viewer.is_active
    assert _entries(actions.USER_DEACTIVATED)[-1].detail == {"user": viewer.username}
    assert signed_in.get(reverse("bulk_jobs")).status_code == 302  # the open session no longer works
    assert _sign_in(viewer.username, PASSWORD) is None
    refused = client.post(reverse("user_active", args=[admin_user.pk]), {"active": "0"}, follow=True)
    assert "You cannot deactivate yourself." in refused.content.decode()

    client.post(reverse("user_active", args=[viewer.pk]), {"active": "1"})
    assert _sign_in(viewer.username, PASSWORD)
    assert _entries(actions.USER_REACTIVATED)[-1].actor_label == admin_user.username
