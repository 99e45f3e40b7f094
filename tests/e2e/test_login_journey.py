import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_editor_logs_in_sees_navigation_and_logs_out(page, live_server, editor, login, embedded_upstream):
    console_errors = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))

    login(editor)

    nav = page.get_by_role("list", name="Main")
    for label in ("Experiments", "Approvals", "Bulk jobs", "Audit"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(page.get_by_text(editor.username)).to_be_visible()
    expect(page.locator("mark.role")).to_have_text("Editor")
    assert page.evaluate("typeof htmx") == "object", "htmx did not load (CSP or static files)"

    page.get_by_role("link", name="Approvals").click()
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(f"{live_server.url}/approvals/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/approvals/")
    assert console_errors == []


def test_wrong_password_shows_the_error_on_the_form(page, live_server, editor):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(editor.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")
