"""One job per command: `backup` takes base backups, `restore` a point in time, `dump` and `load`
move pg_dump files. The old forms that mixed them still work for one release, each saying on
stderr what to run instead; `status` and `backup --list` name each kind of copy."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import REPO, command_env, manage

DOCS = REPO / "docs" / "data-safety.md"


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return manage(data_dir, *args, BACKUP_DIR="", BACKUP_KEEP="")


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def deprecation(old: str, new: str) -> str:
    return (
        f"Deprecated: `manage.py {old}` is now `manage.py {new}`; the old form goes in the next "
        f"release."
    )


def written_path(result: subprocess.CompletedProcess) -> Path:
    line = next(line for line in result.stdout.splitlines() if line.startswith("Wrote "))
    return Path(line.removeprefix("Wrote ").split(" (")[0])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("template") / "data"
    succeeded(manage(data_dir, "migrate", "--noinput"))
    return data_dir


@pytest.fixture
def data_dir(template, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def test_each_old_form_says_what_to_run_instead_and_still_works(data_dir):
    made = succeeded(run(data_dir, "backup", "--logical"))
    assert made.stderr.splitlines() == [deprecation("backup --logical", "dump")]
    first = written_path(made)
    assert first.is_file()

    kept = succeeded(run(data_dir, "backup", "--keep", "1"))
    assert kept.stderr.splitlines() == [deprecation("backup --keep 1", "dump --keep 1")]
    newest = written_path(kept)
    assert f"Deleted old dump {first.name}" in kept.stdout and not first.exists()

    listed = succeeded(run(data_dir, "backup", "--list"))
    assert listed.stderr.splitlines() == [
        deprecation("backup --list (of pg_dump files)", "dump --list")
    ]
    assert newest.name in listed.stdout

    loaded = succeeded(run(data_dir, "restore", str(newest)))
    assert loaded.stderr.splitlines() == [deprecation("restore FILE", "load FILE")]
    assert f"Restored {newest.name}" in loaded.stdout

    latest = succeeded(run(data_dir, "restore", "--latest"))
    assert latest.stderr.splitlines() == [
        deprecation("restore --latest (of a pg_dump file)", "load --latest")
    ]
    assert f"Restored {newest.name}" in latest.stdout

    log = data_dir.parent / "every.log"
    with open(log, "w") as output:
        loop = subprocess.Popen(
            [sys.executable, "manage.py", "backup", "--every", "3600"],
            cwd=REPO,
            env=command_env(data_dir, BACKUP_DIR="", BACKUP_KEEP=""),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "Wrote " not in log.read_text():
            assert loop.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=30)
    assert deprecation("backup --every 3600", "dump --every 3600") in log.read_text()
    assert loop.returncode == 0, log.read_text()

    # The new forms say nothing of the kind.
    for command in (["dump"], ["dump", "--list"], ["load", "--latest", "--force"]):
        assert succeeded(run(data_dir, *command)).stderr == "", command


def test_backup_list_names_the_base_backups_the_window_and_the_dumps(data_dir):
    taken = succeeded(run(data_dir, "backup"))
    assert "checked with pg_verifybackup" in taken.stdout and taken.stderr == ""

    listed = succeeded(run(data_dir, "backup", "--list"))
    assert "No backups" not in listed.stdout, listed.stdout
    assert "Base backups in " in listed.stdout and ": 1, oldest first" in listed.stdout
    assert "Window: restorable from " in listed.stdout
    assert "No pg_dump files in " in listed.stdout
    # The control: pg_dump files alone, which is all `backup --list` used to list, are none.
    assert "No pg_dump files in " in succeeded(run(data_dir, "dump", "--list")).stdout


def documented_alert_keys() -> list[str]:
    """The `status --json` keys the manual tells people to alert on."""
    text = DOCS.read_text()
    paragraph = text[text.index("`--json` prints") :].split("\n\n")[0]
    return re.findall(r"`([a-z_]+\.[a-z_.]+)`", paragraph)


def test_status_names_each_kind_of_copy_and_the_documented_alert_keys_exist(data_dir):
    keys = documented_alert_keys()
    assert "last_backup.age_seconds" in keys, keys
    empty = json.loads(succeeded(run(data_dir, "status", "--json")).stdout)
    assert empty["last_backup"] is None, "the control: no copy of any kind yet"

    succeeded(run(data_dir, "backup"))
    report = json.loads(succeeded(run(data_dir, "status", "--json")).stdout)
    for key in keys:
        assert key.split(".")[0] in report, key
    assert report["last_backup"]["kind"] == "base backup"
    assert 0 <= report["last_backup"]["age_seconds"] < 300
    assert report["base_backups"]["count"] == 1 and report["base_backups"]["bytes"] > 0
    assert report["window"]["earliest"] <= report["window"]["latest"]
    assert report["dumps"] == {"count": 0, "bytes": 0, "newest": None}

    text = succeeded(run(data_dir, "status")).stdout
    assert re.search(r"^Base backup: +1 in ", text, re.M), text
    assert re.search(r"^Window: +\S+ to ", text, re.M), text
    assert re.search(r"^Dumps: +no pg_dump files in ", text, re.M), text

    made = written_path(succeeded(run(data_dir, "dump")))
    report = json.loads(succeeded(run(data_dir, "status", "--json")).stdout)
    assert report["dumps"]["count"] == 1 and report["dumps"]["newest"]["path"] == str(made)
    assert report["last_backup"]["kind"] == "dump", "the newest copy, whichever kind"
    assert report["base_backups"]["count"] == 1
