import pytest

from tests.conftest import PASSWORD


@pytest.fixture
def login(page, live_server):
    """Log in through the real login form."""

    def login_as(user):
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    return login_as
