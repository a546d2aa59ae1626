"""API_DOCS from the environment: staff behind HTTPS, public otherwise, and a clear error."""

import subprocess
import sys

import pytest

from tests.support.keys import GOOD_KEY
from tests.support.processes import REPO

HTTPS_DEPLOYMENT = {
    "DATABASE_URL": "postgres://keepnotes@db.internal/keepnotes",
    "DJANGO_SECRET_KEY": GOOD_KEY,
    "DJANGO_HTTPS": "true",
}


def load_settings(environ: dict) -> subprocess.CompletedProcess:
    """Import config.settings in a fresh interpreter with exactly this environment."""
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.API_DOCS)"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "public"),
        ({"DJANGO_HTTPS": "false"}, "public"),
        (HTTPS_DEPLOYMENT, "staff"),
        ({**HTTPS_DEPLOYMENT, "API_DOCS": ""}, "staff"),
        ({**HTTPS_DEPLOYMENT, "API_DOCS": "public"}, "public"),
        ({**HTTPS_DEPLOYMENT, "API_DOCS": " OFF "}, "off"),
        ({"API_DOCS": "staff"}, "staff"),
    ],
    ids=["local", "http", "https", "https, empty", "https, public", "https, off", "http, staff"],
)
def test_api_docs_default_and_choices(tmp_path, environ, expected):
    result = load_settings({"DATA_DIR": str(tmp_path), **environ})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_a_bad_api_docs_value_stops_the_start_with_the_choices(tmp_path):
    result = load_settings({"DATA_DIR": str(tmp_path), "API_DOCS": "private"})

    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: API_DOCS='private' is not one of: public, staff, off."
        in result.stderr
    )
