"""Everything that is not the JSON API proper: probes, landing page, docs, error pages, admin."""

import json
import re

import pytest
from django.test import Client

from accounts.services import token_create
from notes.services import note_create
from tests.support.api import PASSWORD

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_json():
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_reports_database_migrations_and_disk(settings):
    settings.DISK_FREE_WARN_BYTES = 0
    response = Client().get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "migrations": "applied",
        "disk": "ok",
    }


def test_landing_page_shows_the_database_status_and_links():
    # The server version and where the data lives are for staff (tests/api/test_internals.py).
    response = Client().get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "connected" in page
    for link in ["/admin/", "/api/docs", "/healthz"]:
        assert f'href="{link}"' in page


def test_openapi_schema_lists_the_notes_paths():
    response = Client().get("/api/openapi.json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert {"/api/v1/notes", "/api/v1/notes/{note_id}"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/notes/{note_id}"]) == {"get", "patch", "delete"}


def test_api_docs_page_loads():
    response = Client().get("/api/docs")

    assert response.status_code == 200
    assert b"openapi.json" in response.content


@pytest.mark.parametrize(
    "path", ["/api/nope", "/api/v1/nope", "/api/v2/notes", "/api/v1/notes/1/x"]
)
def test_unknown_api_path_is_404_json(path):
    response = Client().get(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


def test_unknown_site_path_is_404_html():
    response = Client().get("/nope")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Not found" in response.content


def test_unhandled_api_error_is_500_json(monkeypatch, user):
    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("notes.selectors.note_list", explode)
    raw, _ = token_create(user=user)
    client = Client(headers={"Authorization": f"Bearer {raw}"}, raise_request_exception=False)

    response = client.get("/api/v1/notes")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


# -- Admin -------------------------------------------------------------------------------------


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def admin_login(password: str) -> tuple[Client, object]:
    """Log in through the real admin form, with CSRF checks on as in production."""
    browser = Client(enforce_csrf_checks=True)
    form = browser.get("/admin/login/?next=/admin/")
    assert form.status_code == 200
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.content).group(1)
    response = browser.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": password, "csrfmiddlewaretoken": csrf.decode()},
    )
    return browser, response


def test_superuser_logs_into_admin_and_sees_users(superuser, user):
    browser, response = admin_login(PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    users = browser.get("/admin/auth/user/")
    assert users.status_code == 200
    assert b"root" in users.content
    assert b"alice" in users.content


def test_wrong_password_does_not_log_into_admin(superuser):
    browser, response = admin_login("not the password")

    assert response.status_code == 200
    assert b"Please enter the correct username and password" in response.content
    assert browser.get("/admin/auth/user/").status_code == 302


def test_admin_login_without_csrf_token_is_refused(superuser):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/admin/login/")

    response = browser.post("/admin/login/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 403
    assert browser.get("/admin/auth/user/").status_code == 302


def test_notes_and_tokens_admin_pages_load(superuser, user):
    note = note_create(owner=user, title="Admin-visible note", body="", tags=["x"])
    _, token = token_create(user=user)
    browser = Client()
    browser.force_login(superuser)

    pages = {
        "/admin/notes/note/": b"Admin-visible note",
        f"/admin/notes/note/{note.pk}/change/": b"Admin-visible note",
        "/admin/notes/note/add/": b"Title",
        "/admin/accounts/apitoken/": f"token {token.pk} of alice".encode(),
        f"/admin/accounts/apitoken/{token.pk}/change/": b"alice",
    }
    for path, expected in pages.items():
        response = browser.get(path)
        assert response.status_code == 200, path
        assert expected in response.content, path
        assert token.key_hash.encode() not in response.content, path
