"""Browser journey: an admin opens Users from the navigation, adds a user, promotes them, and
deactivates them; the new user signs in while active and is refused once deactivated."""

import pytest
from playwright.sync_api import expect

from experiments_app import roles

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_admin_adds_promotes_and_deactivates_a_user(page, live_server, admin_user, login, embedded_upstream,
                                                   django_user_model):
    login(admin_user)
    page.get_by_role("list", name="Main").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()

    form = page.get_by_role("region", name="Add a user")
    form.get_by_label("Username").fill("rosa")
    form.get_by_label("Role").select_option("Viewer")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("This password is too short")).to_be_visible()
    form = page.get_by_role("region", name="Add a user")
    form.get_by_label("Password").fill("a long enough passphrase")
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("Added rosa as Viewer.")).to_be_visible()

    page.get_by_label("Role of rosa").select_option("Approver")
    page.get_by_role("row", name="rosa").get_by_role("button", name="Save").click()
    expect(page.get_by_text("rosa is now Approver.")).to_be_visible()
    assert roles.user_roles(django_user_model.objects.get(username="rosa")) == ["Approver"]

    page.get_by_role("row", name="rosa").get_by_role("button", name="Deactivate").click()
    expect(page.get_by_text("rosa is deactivated.")).to_be_visible()
    expect(page.get_by_role("row", name="rosa").get_by_role("button", name="Reactivate")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("rosa")
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")
