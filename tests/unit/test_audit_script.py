"""`.ci/audit`: the locked dependencies against known vulnerabilities.

Run for real, with pip-audit asking a stand-in OSV server on loopback (these machines reach no
vulnerability service): it fails on a known vulnerability, passes on none, and where the service
cannot be reached says "NOT RUN" without ever claiming there are no known vulnerabilities.
"""

import os
import shutil
import subprocess

import pytest

from tests.support.osv_standin import OsvStandIn
from tests.support.processes import REPO, free_port

pytestmark = pytest.mark.skipif(not shutil.which("uv"), reason="uv is not on PATH")


def audit(**environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / ".ci" / "audit")],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_AUDIT_VULNERABILITY_SERVICE": "osv", **environ},
        timeout=300,
        check=False,
    )


def test_a_known_vulnerability_in_the_lock_fails_the_audit():
    with OsvStandIn(vulnerable={"django"}) as osv:
        result = audit(PIP_AUDIT_OSV_URL=osv.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "django" in osv.asked and "gunicorn" in osv.asked, "the whole lock is checked"
    assert "STANDIN-django (fixed in 999)" in result.stdout
    assert "dependency audit FAILED: known vulnerabilities in 1 locked packages" in result.stdout


def test_no_known_vulnerability_passes_and_says_how_many_were_checked():
    with OsvStandIn(vulnerable=set()) as osv:
        result = audit(PIP_AUDIT_OSV_URL=osv.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no known vulnerabilities in the {len(set(osv.asked))} locked packages" in (
        result.stdout
    )


def test_an_unreachable_service_is_reported_as_not_run_never_as_no_vulnerabilities():
    nothing_listens = f"http://127.0.0.1:{free_port()}/v1/query"
    result = audit(PIP_AUDIT_OSV_URL=nothing_listens)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("dependency audit NOT RUN: ")
    assert "could not be reached" in result.stdout
    assert "no known vulnerabilities" not in (result.stdout + result.stderr).lower()


def test_pypis_service_behind_a_dead_proxy_is_not_run_either():
    # PyPI's JSON API, pip-audit's default service, through a proxy that refuses connections.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    result = audit(
        PIP_AUDIT_VULNERABILITY_SERVICE="pypi", HTTPS_PROXY=dead_proxy, https_proxy=dead_proxy
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("dependency audit NOT RUN: ")
    assert "no known vulnerabilities" not in (result.stdout + result.stderr).lower()


def test_pypis_own_service_as_reached_from_here_never_reads_as_all_clear_unchecked():
    # Where PyPI cannot answer per package version (a mirror, as on these build machines),
    # pip-audit skips every package and still says "No known vulnerabilities found", exit 0.
    result = audit(PIP_AUDIT_VULNERABILITY_SERVICE="pypi")
    said = result.stdout + result.stderr
    if "NOT RUN" in result.stdout or "INCOMPLETE" in result.stdout:
        assert result.returncode == 0, said
        assert "no known vulnerabilities" not in said.lower()
    else:  # a PyPI that answers: a real result either way
        assert result.stdout.startswith(
            ("dependency audit: no known vulnerabilities in the ", "dependency audit FAILED")
        ), said
