"""Production settings are safe by default: `check --deploy`, security headers, the CSP, the key."""

import re
import subprocess
import sys
from ipaddress import ip_network

import pytest
from django.test import Client

from tests.support.keys import GOOD_KEY
from tests.support.processes import REPO

pytestmark = pytest.mark.django_db

PRODUCTION = {
    "DATABASE_URL": "postgres://keepnotes@db.internal/keepnotes",
    "DJANGO_SECRET_KEY": GOOD_KEY,
    "DJANGO_HTTPS": "true",
    "DJANGO_ALLOWED_HOSTS": "notes.example.com",
}


def manage_py(environ: dict, *args: str) -> subprocess.CompletedProcess:
    """`manage.py` in a fresh interpreter with exactly this environment (nothing from ours)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def settings_in(environ: dict, *names: str) -> list[str]:
    code = "import config.settings as s; " + "; ".join(
        f"print(repr(getattr(s, {name!r}, None)))" for name in names
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **environ},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# -- check --deploy -------------------------------------------------------------------------------


def test_check_deploy_is_clean_in_the_production_configuration(tmp_path):
    result = manage_py(
        {**PRODUCTION, "DATA_DIR": str(tmp_path)}, "check", "--deploy", "--fail-level", "WARNING"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_control_check_deploy_does_report_plain_http(tmp_path):
    plain_http = {**PRODUCTION, "DATA_DIR": str(tmp_path), "DJANGO_HTTPS": "false"}

    result = manage_py(plain_http, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode != 0
    for warning in ["security.W004", "security.W008", "security.W012", "security.W016"]:
        assert warning in result.stderr


def test_asking_for_hsts_preload_sends_it(tmp_path):
    preload = {**PRODUCTION, "DATA_DIR": str(tmp_path), "DJANGO_HSTS_PRELOAD": "true"}

    assert settings_in(preload, "SECURE_HSTS_PRELOAD", "SILENCED_SYSTEM_CHECKS") == [
        "True",
        "[]",
    ]


PRIVATE_NETWORKS = "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,::1/128,fc00::/7"


def networks(text: str) -> str:
    return repr([ip_network(network) for network in text.split(",") if network])


@pytest.mark.parametrize(
    ("extra", "proxies"),
    [
        ({}, PRIVATE_NETWORKS),
        ({"DJANGO_TRUSTED_PROXIES": "192.0.2.0/24, 2001:db8::/32"}, "192.0.2.0/24,2001:db8::/32"),
        ({"DJANGO_TRUSTED_PROXIES": "192.0.2.7"}, "192.0.2.7/32"),
        ({"DJANGO_TRUSTED_PROXIES": ""}, ""),
        ({"DJANGO_BEHIND_PROXY": "false"}, ""),
        ({"DJANGO_HTTPS": "false"}, ""),
        ({"DJANGO_HTTPS": "false", "DJANGO_TRUSTED_PROXIES": "10.0.0.0/8"}, "10.0.0.0/8"),
    ],
)
def test_behind_a_tls_proxy_its_headers_are_trusted_as_configured(tmp_path, extra, proxies):
    environ = {**PRODUCTION, "DATA_DIR": str(tmp_path), **extra}

    proxy_header, trusted = settings_in(environ, "SECURE_PROXY_SSL_HEADER", "TRUSTED_PROXIES")

    assert trusted == networks(proxies)
    if "false" in extra.values():
        assert proxy_header == "None"
    else:
        assert proxy_header == "('HTTP_X_FORWARDED_PROTO', 'https')"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"DJANGO_TRUSTED_PROXIES": "10.0.0.0/33"}, "DJANGO_TRUSTED_PROXIES"),
        ({"DJANGO_TRUSTED_PROXIES": "the ingress"}, "DJANGO_TRUSTED_PROXIES"),
        (
            {"LOGIN_SLOWDOWN_MILLISECONDS": "5000"},
            "LOGIN_SLOWDOWN_MILLISECONDS=5000: use 0 to 2000",
        ),
        ({"REQUEST_READ_TIMEOUT": "0"}, "REQUEST_READ_TIMEOUT=0: use 1 or more"),
    ],
)
def test_start_up_refuses_bad_proxy_and_login_settings(tmp_path, extra, message):
    result = manage_py({**PRODUCTION, "DATA_DIR": str(tmp_path), **extra}, "check")

    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {message}"), result.stderr


def test_login_limits_come_from_the_environment(tmp_path):
    environ = {
        **PRODUCTION,
        "DATA_DIR": str(tmp_path),
        "LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS": "3",
        "LOGIN_FAILURES_PER_ADDRESS": "30",
        "LOGIN_FAILURES_PER_ACCOUNT": "12",
        "LOGIN_SLOWDOWN_MILLISECONDS": "250",
    }

    assert settings_in(
        environ,
        "LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS",
        "LOGIN_FAILURES_PER_ADDRESS",
        "LOGIN_FAILURES_PER_ACCOUNT",
        "LOGIN_SLOWDOWN_SECONDS",
    ) == ["3", "30", "12", "0.25"]


# -- The secret key -------------------------------------------------------------------------------


def import_settings(environ: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **environ},
        capture_output=True,
        text=True,
        check=False,
    )


# Each kind of weak key is refused by core.env.check_secret_key (test_env.py); here, that
# the settings apply it whether or not a database is configured: outside development or in it.
@pytest.mark.parametrize("key", ["changeme", "django-insecure-" + "x" * 60])
@pytest.mark.parametrize("database", ["configured", "embedded"])
def test_start_up_refuses_a_known_insecure_secret_key(tmp_path, key, database):
    environ = {"DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": key}
    if database == "configured":
        environ["DATABASE_URL"] = PRODUCTION["DATABASE_URL"]

    result = import_settings(environ)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is insecure" in result.stderr


def test_start_up_refuses_a_deployment_without_a_secret_key(tmp_path):
    environ = {"DATA_DIR": str(tmp_path), "DATABASE_URL": PRODUCTION["DATABASE_URL"]}

    result = manage_py(environ, "check")

    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: DJANGO_SECRET_KEY is not set")


# -- Headers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/docs", "/admin/login/", "/api/v1/me", "/nope"])
def test_every_response_carries_the_security_headers(path):
    response = Client().get(path)

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert not re.search(r"unsafe-(inline|eval)|https?:|\*", response["Content-Security-Policy"])


def test_the_inline_style_carries_this_responses_nonce():
    first, second = Client().get("/"), Client().get("/")

    nonce = re.search(r"'nonce-([^']+)'", first["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in first.content.decode()
    assert nonce not in second["Content-Security-Policy"]


def test_api_docs_load_swagger_from_this_server_not_a_cdn():
    page = Client().get("/api/docs").content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/ninja/swagger-ui-bundle.js" in sources
    assert all(source.startswith("/") for source in sources), sources
    assert "<script>" not in page  # no inline script: the policy would block it
    for source in sources:
        assert Client().get(source).status_code == 200, source


def test_over_https_hsts_is_sent_and_plain_http_is_redirected(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    plain = Client().get("/api/v1/me")
    proxied = Client().get("/api/v1/me", headers={"X-Forwarded-Proto": "https"})

    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")
    assert proxied["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert proxied.status_code == 401  # through to the API
