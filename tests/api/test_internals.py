"""Public pages give the status; where the data lives, versions and error text are for staff."""

import pytest
from django.conf import settings as settings_module
from django.db import connection
from django.test import Client, RequestFactory

from core import health

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


@pytest.fixture
def staff(make_user):
    browser = Client()
    browser.force_login(make_user("root", is_staff=True))
    return browser


def where(settings) -> str:
    return str(settings.DATA_DIR / "postgres") if settings.EMBEDDED_DATABASE else "/"


def test_anonymous_visitors_see_the_status_without_details(settings, version):
    page = Client().get("/").content.decode()

    assert "connected" in page
    assert version not in page
    assert "Data lives in" not in page
    assert where(settings) not in page
    assert connection.settings_dict["NAME"] not in page


def test_a_logged_in_user_who_is_not_staff_sees_no_details(make_user, version):
    browser = Client()
    browser.force_login(make_user("alice"))

    page = browser.get("/").content.decode()

    assert "connected" in page
    assert version not in page


def test_staff_see_where_the_data_lives_and_the_server_version(settings, staff, version):
    page = staff.get("/").content.decode()

    assert f"PostgreSQL {version}" in page
    assert "Data lives in" in page
    assert where(settings) in page


def test_debug_shows_the_details(settings, version):
    settings.DEBUG = True

    assert f"PostgreSQL {version}" in Client().get("/").content.decode()


@pytest.fixture
def database_refusing(monkeypatch):
    """The real server, asked for on a port where nothing listens: a real connection error."""
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", "9")
    yield
    connection.close()
    monkeypatch.undo()


@pytest.mark.django_db(transaction=True)
def test_an_unavailable_database_shows_no_error_text_to_anonymous_visitors(database_refusing):
    ready = Client().get("/readyz")
    page = Client().get("/").content.decode()

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unavailable"}
    assert "unavailable" in page
    for internal in ["127.0.0.1", ":9", "connection", "refused"]:
        assert internal not in page.lower(), internal
        assert internal not in ready.content.decode().lower(), internal


@pytest.mark.django_db(transaction=True)
def test_debug_shows_the_error_text(settings, database_refusing):
    settings.DEBUG = True

    ready = Client().get("/readyz").json()
    page = Client().get("/").content.decode()

    assert "127.0.0.1" in ready["error"]
    assert "127.0.0.1" in page


def test_probes_recognise_a_staff_session_though_they_answer_before_the_session_middleware(
    staff, make_user
):
    # With the database up /readyz carries no error text to show; ask the decision itself.
    cookie = staff.cookies[settings_module.SESSION_COOKIE_NAME].value
    probe = RequestFactory().get(
        "/readyz", HTTP_COOKIE=f"{settings_module.SESSION_COOKIE_NAME}={cookie}"
    )
    assert not hasattr(probe, "user")

    assert health.shows_details(probe)
    assert not health.shows_details(RequestFactory().get("/readyz"))
    assert not health.shows_details(
        RequestFactory().get("/readyz", HTTP_COOKIE=f"{settings_module.SESSION_COOKIE_NAME}=forged")
    )


def test_readyz_and_the_log_warn_of_low_disk_space_without_naming_paths(settings, caplog):
    settings.DISK_FREE_WARN_BYTES = 10**18  # more than any disk has free
    health._disk_warned_at = float("-inf")

    response = Client().get("/readyz")

    assert response.status_code == 200, "a warning, not a failure: reads still work"
    assert response.json()["disk"] == "low"
    assert str(settings.DATA_DIR) not in response.content.decode()
    assert "Disk space low" in caplog.text and str(settings.DATA_DIR) in caplog.text
    # Negative control: with room to spare there is no warning.
    settings.DISK_FREE_WARN_BYTES = 0
    assert Client().get("/readyz").json()["disk"] == "ok"
