import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.conftest import PASSWORD

PAGES = ["home", "approvals", "bulk_jobs", "audit"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_sends_anonymous_visitors_to_login(client, db, page):
    response = client.get(reverse(page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_admin_pages_need_login_too(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "login" in response["Location"]


@pytest.mark.parametrize("page", PAGES)
def test_viewer_sees_every_page_with_navigation(client, viewer, embedded_upstream, page):
    client.force_login(viewer)
    response = client.get(reverse(page))
    assert response.status_code == 200
    html = response.content.decode()
    for label in ("Experiments", "Approvals", "Bulk jobs", "Audit"):
        assert f">{label}</a>" in html
    assert "Viewer" in html


def test_user_without_a_role_is_refused_with_a_friendly_403(client, db):
    nobody = get_user_model().objects.create_user("nobody", password=PASSWORD)
    client.force_login(nobody)
    response = client.get(reverse("home"))
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()


def test_unknown_address_shows_friendly_404(client, viewer, settings):
    settings.DEBUG = False
    client.force_login(viewer)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.content.decode()


def test_roles_hold_the_documented_permissions(make_user):
    viewer = make_user("v", "Viewer")
    editor = make_user("e", "Editor")
    approver = make_user("a", "Approver")
    admin = make_user("ad", "Admin")
    perms = ["view_portal", "request_change", "approve_change", "administer_portal"]

    def held(user):
        return [p for p in perms if user.has_perm(f"experiments_app.{p}")]

    assert held(viewer) == ["view_portal"]
    assert held(editor) == ["view_portal", "request_change"]
    assert held(approver) == ["view_portal", "request_change", "approve_change"]
    assert held(admin) == perms


def test_create_user_command_makes_a_user_with_the_role(db):
    call_command("create_user", "newbie", "--role", "Editor", "--password", "correct-horse-battery-9", stdout=io.StringIO())
    user = get_user_model().objects.get(username="newbie")
    assert list(user.groups.values_list("name", flat=True)) == ["Editor"]
    assert user.check_password("correct-horse-battery-9")


def test_create_user_command_rejects_a_weak_password(db):
    with pytest.raises(CommandError, match="too common|too short"):
        call_command("create_user", "weak", "--role", "Viewer", "--password", "password", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="weak").exists()


def test_login_and_logout(client, editor):
    response = client.post(reverse("login"), {"username": editor.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("approvals")).status_code == 200
    assert client.get(reverse("logout")).status_code == 405  # logging out is a POST
    client.post(reverse("logout"))
    assert client.get(reverse("approvals")).status_code == 302


def test_failed_logins_are_throttled(client, editor, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": editor.username, "password": "wrong"})
    response = client.post(reverse("login"), {"username": editor.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert client.get(reverse("home")).status_code == 302


def test_pages_carry_a_nonce_based_content_security_policy(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("approvals"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "unsafe-inline" not in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.content.decode()


def test_htmx_is_served_from_the_vendored_copy_and_csrf_header_is_set(client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("approvals")).content.decode()
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html


def test_messages_reach_htmx_responses_as_out_of_band_swap(client, viewer, rf):
    from django.contrib import messages
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.http import HttpResponse

    from experiments_app.middleware import HtmxMessagesMiddleware

    def view(request):
        messages.success(request, "Saved <b>safely</b>")
        return HttpResponse("<p>fragment</p>", content_type="text/html; charset=utf-8")

    request = rf.get("/", headers={"HX-Request": "true"})
    request.session = client.session
    request._messages = FallbackStorage(request)
    from django_htmx.middleware import HtmxDetails

    request.htmx = HtmxDetails(request)
    body = HtmxMessagesMiddleware(view)(request).content.decode()
    assert body.startswith("<p>fragment</p>")
    assert 'id="messages"' in body and 'hx-swap-oob="true"' in body
    assert "Saved &lt;b&gt;safely&lt;/b&gt;" in body
