"""The benchmark's quick mode, for real: it runs, and reports every scenario and configuration.

Its speed is not asserted (CI machines are shared and noisy); that it still works is. Without
wrk the test is skipped locally and fails under CI, where .ci/run installs it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenarios import CONFIGS, SCENARIOS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is not installed; .ci/run installs it (apt-get install wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    results = tmp_path_factory.mktemp("bench")
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DB_", "DATABASE_URL", "WEB_"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return results, done.stdout


def test_quick_mode_writes_the_three_reports_and_a_latest_copy(quick_report):
    results, _ = quick_report
    runs = [path for path in results.iterdir() if path.name != "latest"]
    assert len(runs) == 1
    for folder in (runs[0], results / "latest"):
        for name in ("report.json", "report.md", "chart.png"):
            assert (folder / name).stat().st_size > 0, f"{folder / name} is missing or empty"
    assert (results / "latest" / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_scenario_and_configuration_is_measured_without_errors(quick_report):
    results, _ = quick_report
    report = json.loads((results / "latest" / "report.json").read_text())
    measured = {(row["scenario"], name) for row in report["medians"] for name in CONFIGS}
    assert measured == {(scenario, name) for scenario in SCENARIOS for name in CONFIGS}
    for row in report["medians"]:
        for name in CONFIGS:
            assert row[name]["rps"] > 0, (row["scenario"], name)
            assert row[name]["errors"] == 0, (row["scenario"], name, row[name])
        assert row["ratio_vs_runserver"] > 0 and row["ratio_vs_raw"] > 0
    assert report["pgbench"][0]["tps"] > 0
    assert report["startup"]["first_run_s"] > 0 and report["startup"]["warm_restart_s"] > 0
    assert report["memory"]["production_idle_after_start"]["pss_mib"] > 0
    assert {target["target"] for target in report["targets"]} >= {"warm restart to ready < 2 s"}


def test_the_markdown_report_has_the_table_and_the_targets(quick_report):
    results, stdout = quick_report
    markdown = (results / "latest" / "report.md").read_text()
    for heading in ("## Requests per second", "## Targets", "## pgbench -S", "## Start-up"):
        assert heading in markdown
    for scenario in SCENARIOS:
        assert f"| {scenario} |" in markdown
    assert markdown in stdout, "the command prints the table it wrote"


def test_without_wrk_the_benchmark_says_how_to_install_it(tmp_path):
    environ = {**os.environ, "PATH": str(tmp_path)}  # no wrk on this PATH
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(tmp_path / "results")],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "wrk" in done.stderr and "apt-get install wrk" in done.stderr
    assert not (tmp_path / "results").exists(), "nothing is started or written without wrk"
