"""A killed `serve` leaves its PostgreSQL running (the postmaster has a session of its own).
Whatever comes next, a restore or a new `serve`, finds it first: by its lock files, and by its
own command line once its data folder is gone. A server left on a deleted data folder would
otherwise shut down by itself within a minute (PostgreSQL checks its lock file every 60 s) and
delete its socket file on the way out, which by then would be the new server's.
"""

import os
import signal
import time
from pathlib import Path

from pgembedded import cluster
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import EmbeddedPostgres
from tests.support.note_writers import Writers, all_notes, problems
from tests.support.pitr import Writers as TimedWriters
from tests.support.pitr import lose_folder, wait_for_base_backup
from tests.support.processes import Server, manage

LOAD_SECONDS = 1.5
# Acknowledged notes that a lost data folder may cost (docs/data-safety.md, test_pitr.py).
RPO_CLAIM_SECONDS = 1.0


def postmasters(data_dir: Path) -> list[int]:
    return cluster.postmasters(data_dir, EmbeddedPostgres(data_dir).socket_dir)


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed but not reaped yet, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_serve(server: Server, data_dir: Path) -> int:
    """SIGKILL serve's whole process group, as an OOM kill or a closed terminal would: the
    postmaster it started, which it returns, is not in that group and lives on."""
    postmaster = EmbeddedPostgres(data_dir).running_pid()
    assert postmaster is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    return postmaster


def wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running after {timeout} s"
        time.sleep(0.05)


def test_a_killed_serves_postgres_cannot_cut_off_the_restored_one(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir, shipped=True, BACKUP_DIR="")
    servers.append(first)
    wait_for_base_backup(data_dir / "backups")
    writers = TimedWriters(first, first.token())
    time.sleep(LOAD_SECONDS)
    orphan = kill_serve(first, data_dir)
    cut = time.time()
    writers.stop()
    assert running(orphan), "the premise: the postmaster outlives the killed serve"

    lose_folder(data_dir / "postgres")
    # Its postmaster.pid went with the folder: the restore still finds it, and names it.
    refused = manage(data_dir, "restore", "--latest", BACKUP_DIR="")
    assert refused.returncode == 1, refused.stdout
    assert f"PostgreSQL (pid {orphan})" in refused.stderr
    assert refused.stderr.strip().endswith("Nothing was changed.")
    assert not (data_dir / "postgres").exists()

    # As the refusal says: a fast shutdown. Then the documented recovery.
    os.kill(orphan, signal.SIGINT)
    wait_gone(orphan)
    restored = manage(data_dir, "restore", "--latest", BACKUP_DIR="")
    assert restored.returncode == 0, restored.stderr
    second = Server(data_dir, shipped=True, BACKUP_DIR="")
    servers.append(second)
    assert postmasters(data_dir) == [EmbeddedPostgres(data_dir).running_pid()], "one server"

    token = second.token()
    later = Writers(second.port, token)
    for _ in range(20):
        status, body = second.request("GET", "/readyz")
        assert status == 200 and body["database"] == "ok", body
        time.sleep(0.1)
    later.stop()
    # What the old postmaster would do by itself within a minute, had it been left running:
    # an immediate shutdown, deleting its socket file. Done now, the test need not wait.
    if running(orphan):
        os.kill(orphan, signal.SIGQUIT)
        wait_gone(orphan)

    checked = manage(data_dir, "status")  # a new process: it must reach the server too
    assert checked.returncode == 0, checked.stderr
    notes = all_notes(second, token)
    titles = {note["title"] for note in notes}
    missing = writers.acked() - titles
    allowed = writers.acked_before(cut) - writers.acked_before(cut - RPO_CLAIM_SECONDS)
    acknowledged = {write.note_id: write.title for write in later.writes if write.status == 201}
    print(
        f"\norphan after restore: {len(writers.acked())} acked before the kill, "
        f"{len(missing)} missing after restore --latest (allowed: acked within "
        f"{RPO_CLAIM_SECONDS} s of the kill); {len(acknowledged)} acked after it"
    )
    assert missing <= allowed
    # Both writers number their titles alike: each set is checked on its own notes.
    assert (
        acknowledged and problems(acknowledged, [n for n in notes if n["id"] in acknowledged]) == []
    )
    assert second.stop() == 0


def test_a_serve_restarted_at_once_stops_the_killed_ones_postgres_first(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir)
    servers.append(first)
    writers = Writers(first.port, first.token(), count=8)
    time.sleep(LOAD_SECONDS)
    orphan = kill_serve(first, data_dir)
    killed = time.monotonic()
    writers.stop()
    acknowledged = {write.note_id: write.title for write in writers.writes if write.status == 201}

    second = Server(data_dir)
    servers.append(second)
    restarted_after = second.started - killed
    assert restarted_after < 2
    assert f"PostgreSQL (pid {orphan}) was left running by a killed process" in (
        second.log.read_text()
    )
    assert not running(orphan)
    assert postmasters(data_dir) == [EmbeddedPostgres(data_dir).running_pid()], "one server"
    assert manage(data_dir, "status").returncode == 0
    notes = all_notes(second, second.token())
    print(
        f"\nrestart {restarted_after:.2f} s after the kill: ready in {second.ready_after:.2f} s; "
        f"{len(acknowledged)} acknowledged, {len(notes)} stored"
    )
    assert acknowledged and problems(acknowledged, notes) == []
    assert second.stop() == 0


def test_a_second_postmaster_never_takes_a_live_ones_socket(tmp_path):
    """Whatever finds it or not: PostgreSQL's socket lock file keeps a second server off the
    socket of a live one, so a stopping server can only ever delete its own socket file."""
    first = EmbeddedPostgres(tmp_path / "data")
    first.ensure_running()
    old = first.running_pid()
    try:
        # Its data folder is replaced under it, as a deleted folder and a restore would.
        (first.pgdata / "postmaster.pid").unlink()
        first.pgdata.rename(first.data_dir / "postgres.lost")
        second = EmbeddedPostgres(first.data_dir)
        second._initdb()
        try:
            second._start(say=lambda message: None)
        except EmbeddedPostgresError as error:
            assert "lock file" in str(error) and str(old) in str(error)
        else:
            raise AssertionError("a second postmaster started on the first one's socket")
        with first.connect(dbname="postgres") as connection:  # the first one's socket stands
            assert connection.info.backend_pid
        assert (first.socket_dir / ".s.PGSQL.5432").exists()
    finally:
        for pid in postmasters(first.data_dir):
            os.kill(pid, signal.SIGKILL)
