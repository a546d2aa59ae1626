"""The alert rules in deploy/monitoring/ load in Prometheus, and fire exactly when they should."""

import shutil
import subprocess

import pytest
import yaml

from tests.support.processes import REPO
from tests.support.prometheus import PROMTOOL

MONITORING = REPO / "deploy" / "monitoring"
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="Debian's prometheus is not installed")


def promtool(*args: str, cwd=MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid():
    checked = promtool("check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_when_it_should_and_not_otherwise():
    tested = promtool("test", "rules", "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_the_data_promise_needs_is_there_and_tested():
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts >= {
        "KeepnotesNoRecentBackup",
        "KeepnotesArchiveBehind",
        "KeepnotesArchiveFailing",
        "KeepnotesReplicaLagging",
        "KeepnotesHighErrorRatio",
        "KeepnotesNotReady",
        "KeepnotesDiskLow",
        "KeepnotesLoginThrottlingSpike",
        "KeepnotesTaskQueueStuck",
    }
    tests = yaml.safe_load((MONITORING / "alerts_test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == alerts, "every alert has a unit test"


def test_negative_control_a_wrong_threshold_fails_the_unit_tests(tmp_path):
    for name in ("alerts.yaml", "alerts_test.yaml"):
        shutil.copy(MONITORING / name, tmp_path / name)
    rules = tmp_path / "alerts.yaml"
    loosened = rules.read_text().replace("> 0.01", "> 0.05")
    assert loosened != rules.read_text()
    rules.write_text(loosened)
    tested = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "KeepnotesHighErrorRatio" in tested.stdout + tested.stderr


def test_compose_runs_prometheus_on_request_scraping_the_apps_metrics_port_with_these_rules():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"], "opt-in"
    assert "./deploy/monitoring:/etc/prometheus:ro" in prometheus["volumes"]
    assert [port["host_ip"] for port in prometheus["ports"]] == ["127.0.0.1"]
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "keepnotes", "the alert rules' job"
    assert job["static_configs"] == [{"targets": ["app:9464"]}]
    # The app's metrics port stays on the compose network.
    published = [port["target"] for port in compose["services"]["app"].get("ports", [])]
    assert 9464 not in published
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
