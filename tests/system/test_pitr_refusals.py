"""What `restore` refuses, and what the archive reports: each refusal is one clear line, exit 1,
and the data folder as it was. Corruption of a base backup or of an archived WAL segment is
caught before anything is changed; undoing the damage makes the same restore work (the control).
"""

import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgembedded.postgres import EmbeddedPostgres
from tests.support.pitr import lose_folder, stored_titles, wait_for_base_backup
from tests.support.processes import Server, manage


@pytest.fixture
def served(tmp_path):
    """A data folder with an archive: served once, 10 notes, a complete WAL segment archived."""
    data_dir = tmp_path / "data"
    # No task worker: nothing commits once the test's notes are in (a quiet archive).
    server = Server(data_dir, shipped=True, BACKUP_DIR="", TASK_WORKERS="0")
    try:
        wait_for_base_backup(data_dir / "backups")
        token = server.token()
        for number in range(10):
            assert server.request("POST", "/api/v1/notes", {"title": f"n{number}"}, token)[0] == 201
        status, ready = server.request("GET", "/readyz")
        assert status == 200 and ready["archive"]["state"] == "streaming", ready
        assert ready["archive"]["last_base_backup"]
        with EmbeddedPostgres(data_dir).connect(autocommit=True) as database:
            database.execute("SELECT pg_switch_wal()")
        wait_for_ledger(data_dir / "backups")
        refused = manage(data_dir, "restore", "--latest", "--force", BACKUP_DIR="")
        assert refused.returncode == 1 and "stop `serve`" in refused.stderr, refused.stderr
        yield server, data_dir
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
        pid = EmbeddedPostgres(data_dir).running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def wait_for_ledger(archive_dir: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(path.read_text() for path in archive_dir.glob("wal/*/SHA256SUMS")):
            return
        time.sleep(0.1)
    raise AssertionError("no WAL segment was recorded as complete")


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def refused(data_dir: Path, *args: str) -> str:
    result = manage(data_dir, "restore", *args, BACKUP_DIR="")
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_restore_refuses_bad_input_and_corruption_and_leaves_the_data(served):
    server, data_dir = served
    assert server.stop() == 0
    archive = data_dir / "backups"
    notes = stored_titles(data_dir)
    assert sum(notes.values()) == 10

    assert "not an ISO-8601 time" in refused(data_dir, "--to", "yesterday at ten")
    assert "outside the recoverable window" in refused(data_dir, "--to", "2001-01-01T00:00:00")
    assert "already holds data" in refused(data_dir, "--latest")

    # A flipped byte in a base backup's table file: pg_verifybackup catches it.
    [base] = [path for path in (archive / "base").iterdir() if path.is_dir()]
    table_file = max((base / "base").rglob("[0-9]*"), key=lambda path: path.stat().st_size)
    flip_byte(table_file, 100)
    assert "is damaged" in refused(data_dir, "--latest", "--force")
    flip_byte(table_file, 100)

    # A flipped byte in an archived WAL segment: its recorded sha256 no longer matches.
    [ledger] = archive.glob("wal/*/SHA256SUMS")
    segment = ledger.parent / ledger.read_text().splitlines()[-1].split()[-1]
    flip_byte(segment, 5000)
    assert "is corrupt" in refused(data_dir, "--latest", "--force")
    assert stored_titles(data_dir) == notes, "the data folder is untouched"
    assert not list(data_dir.glob("postgres.before-restore-*"))
    flip_byte(segment, 5000)

    # The control: undamaged, the same restore works, and the old folder is kept aside.
    restored = manage(data_dir, "restore", "--latest", "--force", BACKUP_DIR="")
    assert restored.returncode == 0, restored.stderr
    assert stored_titles(data_dir) == notes
    assert len(list(data_dir.glob("postgres.before-restore-*"))) == 1

    # A time after the last commit, in the window: no commit after it to stop at, so the state
    # at that time is the archive's end (PostgreSQL alone would refuse: target not reached).
    newest = max(path.stat().st_mtime for path in archive.glob("wal/*/0*"))
    quiet = datetime.fromtimestamp(newest - 0.2, UTC).isoformat()
    restored = manage(data_dir, "restore", "--to", quiet, "--force", BACKUP_DIR="")
    assert restored.returncode == 0, restored.stderr
    assert stored_titles(data_dir) == notes


def test_backup_list_and_status_describe_the_archive(served):
    server, data_dir = served
    status = manage(data_dir, "status", BACKUP_DIR="")
    assert status.returncode == 0, status.stderr
    for label in ("Archive:", "RPO:", "Base backup:", "Window:", "Last error:"):
        assert label in status.stdout, status.stdout
    assert "none (archive)" in status.stdout
    assert "(streaming," in status.stdout
    assert server.stop() == 0

    made = manage(data_dir, "backup", BACKUP_DIR="")
    assert made.returncode == 0 and "checked with pg_verifybackup" in made.stdout, made.stderr
    listed = manage(data_dir, "restore", "--list", BACKUP_DIR="")
    assert listed.returncode == 0, listed.stderr
    assert "Recoverable from" in listed.stdout and "2 base backups" in listed.stdout, listed.stdout

    # Retention: base backups past BACKUP_RETENTION go (never the newest), with the WAL only
    # they needed; what is left still restores (the drill below).
    from backups.continuous.archive import Archive

    archive = Archive(data_dir / "backups")
    [first, newest] = [backup.name for backup in archive.base_backups()]
    assert archive.prune(keep_days=7, now=time.time() + 8 * 86400) == [first]
    assert [backup.name for backup in archive.base_backups()] == [newest]
    assert archive.prune(keep_days=0) == [], "the newest is never deleted"

    # The restore drill, then the same drill on a damaged archive (the control).
    drill = manage(data_dir, "backup", "--verify-restore", BACKUP_DIR="")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "Restore drill passed" in drill.stdout
    notes_line = next(line for line in drill.stdout.splitlines() if "notes_note" in line)
    assert notes_line.split()[1:5] == ["restored", "10", "live", "10"]
    assert not (data_dir / "verify-restore").exists()
    [newest] = sorted((data_dir / "backups" / "base").glob("*.json"))[-1:]
    (newest.with_suffix("") / "global" / "pg_control").write_bytes(b"damaged")
    failed = manage(data_dir, "backup", "--verify-restore", BACKUP_DIR="")
    assert failed.returncode == 1 and "Restore drill failed" in failed.stderr, failed.stderr


def test_the_wal_queue_warning_comes_well_before_the_disk_is_full():
    from backups.continuous.protection import wal_queue_warning

    megabyte = 1_000_000
    assert wal_queue_warning(32 * megabyte, 64 * megabyte) is None, "small queues never alarm"
    assert wal_queue_warning(200 * megabyte, 10_000 * megabyte) is None
    warning = wal_queue_warning(200 * megabyte, 799 * megabyte)  # a quarter of the free space
    assert warning and "WARNING" in warning


def test_a_new_database_made_after_a_lost_data_folder_is_never_restored_by_guess(tmp_path, servers):
    """The data folder is lost and `serve` starts again before anyone restores: it creates an
    empty database, and protects it into the same archive. `--latest` must not pick that one
    silently; it names both, and each can be restored by its system identifier."""
    data_dir = tmp_path / "data"
    kept = {f"kept {number}": 1 for number in range(5)}
    server = serve_until_base_backups(data_dir, 1, servers)
    token = server.token()
    for title in kept:
        assert server.request("POST", "/api/v1/notes", {"title": title}, token)[0] == 201
    assert server.stop() == 0
    lose_folder(data_dir / "postgres")

    server = serve_until_base_backups(data_dir, 2, servers)  # a new initdb: an empty database
    assert server.request("POST", "/api/v1/notes", {"title": "new"}, server.token())[0] == 201
    assert server.stop() == 0
    assert "This is a new database" in server.log.read_text(), server.log.read_text()

    guessed = manage(data_dir, "restore", "--latest", "--force", BACKUP_DIR="")
    assert guessed.returncode == 1, guessed.stdout + guessed.stderr
    assert "holds 2 databases" in guessed.stderr, guessed.stderr
    lost, new = re.findall(r"restore --latest --database (\d+)", guessed.stderr)
    assert lost != new
    assert stored_titles(data_dir) == {"new": 1}, "nothing was changed"
    listed = manage(data_dir, "restore", "--list", BACKUP_DIR="")
    assert f"database {lost}," in listed.stdout and f"database {new}," in listed.stdout

    # The control: the newest history is the new database's, which --latest used to restore.
    restored = manage(data_dir, "restore", "--latest", "--database", new, "--force", BACKUP_DIR="")
    assert restored.returncode == 0, restored.stderr
    assert stored_titles(data_dir) == {"new": 1}
    restored = manage(data_dir, "restore", "--latest", "--database", lost, "--force", BACKUP_DIR="")
    assert restored.returncode == 0, restored.stderr
    assert stored_titles(data_dir) == kept
    # Served again, the lost one is the newest, and --latest takes it: the container e2e does
    # that (a lost volume, `up`, `restore --to`, `up`, then `restore --latest`).


def serve_until_base_backups(data_dir: Path, count: int, servers: list) -> Server:
    """`serve` as shipped (no task worker: a quiet archive), until `count` base backups exist."""
    server = Server(data_dir, shipped=True, BACKUP_DIR="", TASK_WORKERS="0")
    servers.append(server)
    deadline = time.monotonic() + 30
    while len(list((data_dir / "backups" / "base").glob("*.json"))) < count:
        assert time.monotonic() < deadline, f"no base backup number {count}"
        time.sleep(0.1)
    return server
