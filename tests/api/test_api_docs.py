"""API_DOCS: who may read /api/docs and /api/openapi.json (public, staff or off).

Staff means an admin session of a staff user; a bearer token, even a staff user's, is not one.
How the setting is read from the environment is in tests/unit/test_api_docs_setting.py.
"""

import pytest
from django.test import Client

from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

DOC_PATHS = ["/api/docs", "/api/openapi.json"]


@pytest.fixture
def staff_browser(make_user):
    browser = Client()
    browser.force_login(make_user("staff", is_staff=True))
    return browser


@pytest.fixture
def user_browser(user):
    browser = Client()
    browser.force_login(user)
    return browser


def assert_sent_to_admin_login(response, path: str) -> None:
    assert response.status_code == 302, response.content
    assert response["Location"] == f"/admin/login/?next={path}"


@pytest.mark.parametrize("path", DOC_PATHS)
def test_public_docs_answer_anyone(settings, path):
    settings.API_DOCS = "public"

    assert Client().get(path).status_code == 200


@pytest.mark.parametrize("path", DOC_PATHS)
def test_staff_docs_answer_a_staff_session(settings, staff_browser, path):
    settings.API_DOCS = "staff"

    assert staff_browser.get(path).status_code == 200


@pytest.mark.parametrize("path", DOC_PATHS)
def test_staff_docs_send_everyone_else_to_the_admin_login(
    settings, user_browser, make_user, client_for, path
):
    settings.API_DOCS = "staff"
    staff_token = client_for(make_user("token-staff", is_staff=True))

    for caller in [Client(), user_browser, staff_token]:
        response = caller.get(path)
        assert_sent_to_admin_login(response, path)
        assert b"openapi" not in response.content


@pytest.mark.parametrize("path", DOC_PATHS)
def test_off_docs_are_not_found_even_for_staff(settings, staff_browser, path):
    settings.API_DOCS = "off"

    for caller in [Client(), staff_browser]:
        assert json_error(caller.get(path), 404) == {"detail": "Not found."}


def test_the_api_itself_does_not_depend_on_the_docs(settings, api):
    settings.API_DOCS = "off"

    assert api.get("/api/v1/me").status_code == 200


def test_the_test_settings_serve_public_docs(settings):
    """DJANGO_HTTPS is off in the suite: the default is public (test_fuzz.py loads the schema)."""
    assert settings.API_DOCS == "public"


@pytest.mark.parametrize(
    ("setting", "shown_to_anyone", "shown_to_staff"),
    [("public", True, True), ("staff", False, True), ("off", False, False)],
)
def test_the_landing_page_links_the_docs_only_for_those_who_may_read_them(
    settings, staff_browser, user_browser, setting, shown_to_anyone, shown_to_staff
):
    settings.API_DOCS = setting

    for caller, shown in [(Client(), shown_to_anyone), (user_browser, shown_to_anyone)]:
        page = caller.get("/")
        assert page.status_code == 200
        assert (b'href="/api/docs"' in page.content) is shown, (setting, caller)
    assert (b'href="/api/docs"' in staff_browser.get("/").content) is shown_to_staff
    assert b'href="/admin/"' in Client().get("/").content, "the other links stay"
