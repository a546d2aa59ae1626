"""`serve` keeps the embedded PostgreSQL alive: SIGKILL the postmaster and it comes back.

While writers create notes, the postmaster is killed three times; each time the same `serve`
process starts it again (crash recovery), the API answers 503 with Retry-After meanwhile and
/readyz says "restarting", and afterwards every acknowledged note is there exactly once.
Repeated deaths back off, then stop serve with one clear message; a second serve on the same
folder does not start a second postmaster; with supervision off the API stays 503 (the control).
"""

import os
import signal
import subprocess
import time

from pgembedded.postgres import EmbeddedPostgres
from tests.support.note_writers import Writers, all_notes, post_note, problems
from tests.support.processes import Server

KILLS = 3


def kill_postmaster(data_dir) -> int:
    pid = EmbeddedPostgres(data_dir).running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid


def postmasters(data_dir) -> int:
    """How many postmasters run on this folder (their backends have other command lines)."""
    pgdata = EmbeddedPostgres(data_dir).pgdata
    found = subprocess.run(["pgrep", "-f", f"postgres -D {pgdata}"], capture_output=True, text=True)
    return len(found.stdout.split())


def wait_ready_again(
    server: Server, data_dir, killed: int, timeout: float = 30
) -> tuple[float, set]:
    """Seconds until a new postmaster runs and /readyz is 200 again; what it said meanwhile."""
    started = time.monotonic()
    seen = set()
    while time.monotonic() - started < timeout:
        restarted = EmbeddedPostgres(data_dir).running_pid() not in (None, killed)
        try:
            status, body = server.request("GET", "/readyz")
        except OSError:
            status, body = None, None
        if status == 200 and restarted:
            return time.monotonic() - started, seen
        seen.add((status, (body or {}).get("database")))
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout} s; saw {seen}\n{server.log.read_text()}")


def test_the_postmaster_killed_three_times_is_restarted_and_nothing_is_lost(tmp_path, servers):
    data_dir = tmp_path / "data"
    server = Server(data_dir, shipped=True, WEB_CONCURRENCY="2", TASK_WORKERS="0")
    servers.append(server)
    serve_pid = server.process.pid
    token = server.token()
    # `protect`, still starting, would start a dead server itself on first use: let it settle.
    deadline = time.monotonic() + 30
    while "WAL streamed as written" not in server.log.read_text():
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.1)
    writers = Writers(server.port, token)

    recoveries, during = [], set()
    for _ in range(KILLS):
        time.sleep(0.7)  # writes go in
        killed = kill_postmaster(data_dir)
        seconds, seen = wait_ready_again(server, data_dir, killed)
        recoveries.append(seconds)
        during |= seen
    time.sleep(0.5)  # writes after the last recovery go in too
    writes = writers.stop()

    assert server.process.poll() is None and server.process.pid == serve_pid, "the same serve"
    assert (503, "restarting") in during, during
    statuses = {write.status for write in writes}
    assert statuses <= {201, 503, None}, statuses
    refused = [write for write in writes if write.status == 503]
    assert all(write.retry_after for write in refused), "every 503 says when to retry"

    acknowledged = {write.note_id: write.title for write in writes if write.status == 201}
    assert problems(acknowledged, all_notes(server, token)) == []
    # What got a 503 or no answer may have committed: its retry, with its key, adds nothing twice.
    for write in writes:
        if write.status != 201:
            post_note(server.port, token, write)
            assert write.status == 201, write
    every_write = {write.note_id: write.title for write in writes}
    notes = all_notes(server, token)
    assert problems(every_write, notes) == []
    assert len(notes) == len(writes)
    assert postmasters(data_dir) == 1
    print(
        f"\nsupervision: recovered in {', '.join(f'{s:.2f}' for s in recoveries)} s; "
        f"{len(acknowledged)} acknowledged, all found; {len(refused)} refused with 503, "
        f"{sum(w.status is None for w in writes)} unanswered; {len(notes)} notes for "
        f"{len(writes)} writes after retries; /readyz meanwhile: {sorted(map(str, during))}"
    )
    assert server.stop() == 0


def test_without_supervision_the_api_stays_unavailable(tmp_path, servers):
    """The negative control: nobody restarts it."""
    data_dir = tmp_path / "data"
    # No `protect` process either: one still starting would start the server on first use.
    server = Server(
        data_dir, EMBEDDED_SUPERVISE="false", BACKUP_PROTECTION="false", TASK_WORKERS="0"
    )
    servers.append(server)
    token = server.token()

    kill_postmaster(data_dir)
    time.sleep(4)

    assert EmbeddedPostgres(data_dir).running_pid() is None
    status, body = server.request("GET", "/readyz")
    assert (status, body["database"]) == (503, "unavailable")
    status, body = server.request("GET", "/api/v1/notes", token=token)
    assert status == 503 and "unavailable" in body["detail"]


def test_repeated_deaths_stop_serve_with_one_clear_message(tmp_path, servers):
    data_dir = tmp_path / "data"
    # No `protect`: one still starting would restart the server before the supervisor saw it die.
    server = Server(
        data_dir, EMBEDDED_RESTART_LIMIT="1", BACKUP_PROTECTION="false", TASK_WORKERS="0"
    )
    servers.append(server)

    wait_ready_again(server, data_dir, kill_postmaster(data_dir))
    kill_postmaster(data_dir)  # the second death within the window: too many
    code = server.process.wait(timeout=60)

    log = server.log.read_text()
    assert code == 1, log
    assert log.count("died 2 times within 300 s; not restarting it again") == 1, log
    assert EmbeddedPostgres(data_dir).running_pid() is None


def test_two_serves_on_one_folder_restart_one_postmaster(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir, BACKUP_PROTECTION="false", TASK_WORKERS="0")
    servers.append(first)
    second = Server(data_dir, BACKUP_PROTECTION="false", TASK_WORKERS="0")
    servers.append(second)

    killed = kill_postmaster(data_dir)
    wait_ready_again(first, data_dir, killed)
    wait_ready_again(second, data_dir, killed)

    assert EmbeddedPostgres(data_dir).running_pid() not in (None, killed)
    assert postmasters(data_dir) == 1
    logs = first.log.read_text() + second.log.read_text()
    assert logs.count("PostgreSQL is running again") == 1, logs
