"""The benchmark's quick mode, for real: it runs, and reports every scenario, configuration
(production, runserver, the DRF and django-bolt peers, raw) and target.

Its speed is not asserted (CI machines are shared and noisy); that it still works is. Without
wrk the test is skipped locally and fails under CI, where .ci/install installs it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import downloads, slow_clients
from bench.run import parse_arguments
from bench.scenarios import (
    CONFIGS,
    P99_TARGET_SCENARIOS,
    PHASE_SCENARIOS,
    RATIO_TARGETS,
    REFERENCES,
    SCENARIOS,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is not installed; .ci/install installs it (apt-get install wrk)")
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
    matrix = [scenario for scenario in SCENARIOS if scenario not in PHASE_SCENARIOS]
    assert measured == {(scenario, name) for scenario in matrix for name in CONFIGS}
    for row in report["medians"]:
        for name in CONFIGS:
            assert row[name]["rps"] > 0, (row["scenario"], name)
            assert row[name]["errors"] == 0, (row["scenario"], name, row[name])
        for reference in REFERENCES:
            assert row[f"ratio_vs_{reference}"] > 0, (row["scenario"], reference)
    assert report["configurations"]["drf"]["server"]["server"].startswith("gunicorn")
    assert report["configurations"]["bolt"]["server"]["server"].startswith("django-bolt")
    assert report["pgbench"][0]["tps"] > 0
    assert report["startup"]["first_run_s"] > 0 and report["startup"]["warm_restart_s"] > 0
    assert report["memory"]["production_idle_after_start"]["pss_mib"] > 0
    assert {target["target"] for target in report["targets"]} >= {"warm restart to ready < 2 s"}


def test_every_configuration_answered_read_one_as_the_app_before_it_was_loaded(quick_report):
    """The right note with the caller's token, 401 without one, 404 for another user's note:
    checked on the running servers before the load (bench/answers.py; its failures are
    tests/unit/test_bench_answers.py)."""
    results, _ = quick_report
    report = json.loads((results / "latest" / "report.json").read_text())
    expected = {"read_one": 200, "without_token": 401, "another_users_note": 404}
    assert report["answers"] == dict.fromkeys(CONFIGS, expected)


def test_every_target_is_judged_with_its_number(quick_report):
    results, _ = quick_report
    report = json.loads((results / "latest" / "report.json").read_text())
    levels = report["meta"]["plan"]["connections"]
    expected = len(RATIO_TARGETS) * len(levels) + len(P99_TARGET_SCENARIOS) + 2
    expected += len(downloads.QUICK_SIZES)
    assert len(report["targets"]) == expected, [target["target"] for target in report["targets"]]
    for target in report["targets"]:
        assert target["met"] in (True, False), target
        assert isinstance(target["value"], int | float), target
    texts = " | ".join(target["target"] for target in report["targets"])
    for reference in REFERENCES:
        assert f"x {reference}" in texts
    assert "warm restart to ready < 2 s" in texts and "warm-up:" in texts


def test_the_first_seconds_after_a_restart_are_measured_against_steady_state(quick_report):
    results, _ = quick_report
    report = json.loads((results / "latest" / "report.json").read_text())
    after, plan = report["after_restart"], report["meta"]["plan"]
    windows = after["windows"]
    assert len(windows) == plan["after_restart_seconds"] // plan["after_restart_window_seconds"]
    assert after["restart_s"] > 0 and after["steady_rps"] > 0
    for window in windows:
        assert window["rps"] > 0 and window["errors"] == 0, window
        assert window["share_of_steady"] > 0
    assert [window["started_s"] for window in windows] == sorted(w["started_s"] for w in windows)


def test_slow_and_idle_clients_are_held_while_read_one_runs(quick_report):
    """The phase ran with its quick numbers, really held its clients, and reported them."""
    results, _ = quick_report
    report = json.loads((results / "latest" / "report.json").read_text())
    found = report["slow_clients"]
    assert found["counts"] == slow_clients.QUICK
    production = found["servers"]["production"]
    clients = production["clients"]
    assert clients["idle_most_open"] == slow_clients.QUICK["idle"], clients
    assert clients["slow_most_open"] == slow_clients.QUICK["slow"], clients
    assert clients["connect_errors"] == 0 and clients["slow_bytes_sent"] > 0, clients
    assert production["during"] and production["errors_with"] == 0, production["during"]
    assert production["p99_with_ms"] > 0 and production["p99_ratio"] > 0, production
    readiness = production["readyz"]
    assert readiness["polls"] >= 2 and readiness["all_200"], readiness
    markdown = (results / "latest" / "report.md").read_text()
    section = markdown.split("## Slow and idle clients", 1)[1].split("\n## ", 1)[0]
    assert "| production | " in section and "200 x" in section, section


def test_the_markdown_report_has_the_table_and_the_targets(quick_report):
    results, stdout = quick_report
    markdown = (results / "latest" / "report.md").read_text()
    for heading in (
        "## Requests per second",
        "## Targets",
        "## Warm-up: the first seconds after a restart",
        "## pgbench -S",
        "## Start-up",
    ):
        assert heading in markdown
    for name in CONFIGS:
        assert f"| {name} req/s |" in markdown
    assert "| not measured" not in markdown, "the quick run measures every target"
    for scenario in SCENARIOS:
        # A phase of its own (the download phase) has its own section instead.
        assert f"| {scenario} |" in markdown or scenario in PHASE_SCENARIOS
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


def test_scenarios_and_configurations_can_be_chosen_and_unknown_names_are_refused(capsys):
    plan, _, _ = parse_arguments(["--scenarios", "write,read-one", "--configurations", "raw"])
    assert plan.scenarios == ["read-one", "write"]
    assert plan.configurations == ["production", "raw"], "production always runs"
    everything, _, _ = parse_arguments([])
    assert everything.scenarios == list(SCENARIOS)
    assert everything.configurations == list(CONFIGS)
    for wrong in (["--scenarios", "read-one,reed-one"], ["--configurations", "drf,django"]):
        with pytest.raises(SystemExit) as exit_:
            parse_arguments(wrong)
        assert exit_.value.code == 2
        assert wrong[1] in capsys.readouterr().err


def test_downloads_are_measured_against_nginxs_own_static_file(quick_report):
    results, _ = quick_report
    report = json.loads((results / "latest" / "report.json").read_text())
    found = report["downloads"]
    assert list(found) == list(downloads.QUICK_SIZES)
    for row in found.values():
        assert row["app_rps"] > 0 and row["static_rps"] > 0 and row["errors"] == 0, row
    markdown = (results / "latest" / "report.md").read_text()
    assert "## Downloads" in markdown and "download 1 MiB: >= 0.8x" in markdown
