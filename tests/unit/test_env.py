"""Configuration from the environment: the plain functions behind config/settings.py."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import env
from core.database.base import DatabaseWrapper
from tests.support.keys import GOOD_KEY


def test_database_url_is_parsed_with_escapes_and_options():
    db = env.database_from_environment(
        {"DATABASE_URL": "postgres://app%40x:p%2Fss@db.example:6543/notes?sslmode=require"}
    )
    assert db == {
        "HOST": "db.example",
        "PORT": 6543,
        "NAME": "notes",
        "USER": "app@x",
        "PASSWORD": "p/ss",
        "OPTIONS": {"sslmode": "require"},
    }


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("postgres://u@%2Ftmp%2FMy%20Project%2Frun/db", "/tmp/My Project/run"),
        ("postgres://u:p@[::1]:5433/db", "::1"),
        ("postgres://DB.example/db", "DB.example"),
    ],
)
def test_database_url_hosts_keep_their_spelling(url, host):
    assert env.parse_database_url(url)["HOST"] == host


def test_database_url_may_name_several_hosts_as_libpq_does():
    db = env.parse_database_url(
        "postgresql://app:pw@db1.example:5433,[::1],%2Frun%2Fpg:6000/notes"
        "?target_session_attrs=read-write"
    )
    assert (db["HOST"], db["PORT"]) == ("db1.example,::1,/run/pg", "5433,5432,6000")
    assert (db["USER"], db["PASSWORD"], db["NAME"]) == ("app", "pw", "notes")
    assert db["OPTIONS"] == {"target_session_attrs": "read-write"}


def test_several_hosts_reach_libpq_as_its_lists():
    """The backend hands psycopg libpq's host and port lists, which it tries in turn."""
    db = env.parse_database_url("postgres://u:p@h1:5433,h2:5434/n?target_session_attrs=read-write")
    wrapper = DatabaseWrapper({**db, "ENGINE": "core.database", "TIME_ZONE": None}, "default")
    params = wrapper.get_connection_params()
    assert (params["host"], params["port"], params["target_session_attrs"]) == (
        "h1,h2",
        "5433,5434",
        "read-write",
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://u@h/db", "postgres://"),
        ("postgres://u@h", "names no database"),
        ("postgres://u@h:notaport/db", "invalid port"),
        ("postgres://u@h1:5432,h2:99999/db", "invalid port"),
    ],
)
def test_bad_database_url_is_refused_clearly(url, complaint):
    with pytest.raises(ImproperlyConfigured, match=complaint):
        env.database_from_environment({"DATABASE_URL": url})


def test_tutorial_style_variables_are_an_alternative():
    db = env.database_from_environment(
        {"DB_HOST": "db", "DB_PORT": "5433", "DB_NAME": "n", "DB_USER": "u", "DB_PASS": "s3"}
    )
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "db",
        5433,
        "n",
        "u",
        "s3",
    )


def test_database_url_wins_over_db_host():
    db = env.database_from_environment({"DATABASE_URL": "postgres://u@a/x", "DB_HOST": "b"})
    assert db["HOST"] == "a"


def test_nothing_configured_means_the_embedded_database():
    assert env.database_from_environment({}) is None


def test_file_variant_reads_a_secret_from_a_file(tmp_path):
    secret = tmp_path / "db_pass"
    secret.write_text("from-a-file\n")
    db = env.database_from_environment({"DB_HOST": "db", "DB_PASS_FILE": str(secret)})
    assert db["PASSWORD"] == "from-a-file"


def test_file_variant_that_cannot_be_read_is_a_clear_error(tmp_path):
    with pytest.raises(ImproperlyConfigured, match=r"DB_PASS_FILE=.*cannot be read"):
        env.get_str("DB_PASS", environ={"DB_PASS_FILE": str(tmp_path / "missing")})


def test_value_and_file_variant_together_are_ambiguous(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env.get_str("DB_PASS", environ={"DB_PASS": "a", "DB_PASS_FILE": str(tmp_path)})


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("off", False)])
def test_booleans(raw, value):
    assert env.get_bool("X", not value, {"X": raw}) is value


def test_a_boolean_that_is_not_one_is_refused():
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env.get_bool("DJANGO_DEBUG", False, {"DJANGO_DEBUG": "maybe"})


def test_a_number_that_is_not_one_is_refused():
    with pytest.raises(ImproperlyConfigured, match="PORT='abc' is not a whole number"):
        env.get_int("PORT", 3003, {"PORT": "abc"})


def test_lists_are_comma_separated():
    assert env.get_list("H", [], {"H": " a.example, b.example ,"}) == ["a.example", "b.example"]


@pytest.mark.parametrize(
    "key",
    ["", "changeme", "short", "django-insecure-" + "x" * 60, "a" * 60],
)
def test_insecure_secret_keys_are_refused(key):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        env.check_secret_key(key)


def test_a_strong_secret_key_is_accepted():
    assert env.check_secret_key(GOOD_KEY) == GOOD_KEY


def test_local_secret_key_is_generated_once_and_kept(tmp_path):
    first = env.local_secret_key(tmp_path)
    assert len(first) >= 50
    assert env.local_secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert env.local_secret_key(tmp_path / "elsewhere") != first


def _settings_in_subprocess(environ: dict, expression: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with exactly this environment."""
    code = f"import config.settings as s; print({expression})"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **environ},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_deployment_without_a_secret_key_does_not_start(tmp_path):
    result = _settings_in_subprocess(
        {"DATABASE_URL": "postgres://u@db/x", "DATA_DIR": str(tmp_path)}, "s.SECRET_KEY"
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_local_run_needs_no_configuration_and_is_production_by_default(tmp_path):
    result = _settings_in_subprocess(
        {"DATA_DIR": str(tmp_path)},
        "s.DEBUG, s.EMBEDDED_DATABASE, s.PORT, s.SESSION_COOKIE_SECURE, len(s.SECRET_KEY)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "3003", "False", "67"]
    assert (tmp_path / "secret_key").exists()


def test_https_in_front_turns_on_secure_cookies_and_hsts(tmp_path):
    result = _settings_in_subprocess(
        {"DATA_DIR": str(tmp_path), "DJANGO_HTTPS": "true"},
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0",
    )
    assert result.stdout.split() == ["True", "True", "True"], result.stderr
