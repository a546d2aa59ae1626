"""Crash safety, for real: the app server and PostgreSQL are killed (SIGKILL) while writers are
creating notes; after a restart every note the API acknowledged with 201 is there exactly once,
and retrying the writes that got no answer, with their Idempotency-Keys, duplicates nothing.
"""

import http.client
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgembedded import cluster
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import EmbeddedPostgres
from tests.support.processes import Server

WRITERS = 8
LOAD_SECONDS = 1.5


@dataclass
class Write:
    key: str
    title: str
    status: int | None = None  # None: no answer (the connection failed or was cut)
    note_id: int | None = None
    replayed: bool = False


def post_note(port: int, token: str, write: Write) -> None:
    """POST the note with its key; records the answer on `write`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/api/v1/notes",
            body=json.dumps({"title": write.title, "body": f"key {write.key}"}),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": write.key,
            },
        )
        response = connection.getresponse()
        body = json.loads(response.read() or b"null")
    except (OSError, http.client.HTTPException):
        write.status = None
        return
    finally:
        connection.close()
    write.status = response.status
    write.replayed = response.getheader("Idempotent-Replayed") == "true"
    if response.status == 201:
        write.note_id = body["id"]


def write_until(stop: threading.Event, port: int, token: str, writer: int, log: list) -> None:
    for number in range(1_000_000):
        if stop.is_set():
            return
        write = Write(key=str(uuid.uuid4()), title=f"writer {writer} note {number}")
        log.append(write)
        post_note(port, token, write)


def all_notes(server: Server, token: str) -> list[dict]:
    notes, cursor = [], ""
    while True:
        status, page = server.request("GET", f"/api/v1/notes?limit=100{cursor}", token=token)
        assert status == 200, page
        notes += page["items"]
        if not page["next"]:
            return notes
        cursor = f"&cursor={page['next']}"


def problems(acknowledged: dict[int, str], notes: list[dict]) -> list[str]:
    """What is wrong with the stored notes, given what the API acknowledged: the checker."""
    stored = {note["id"]: note["title"] for note in notes}
    found = [
        f"acknowledged note {note_id} ({title!r}) is missing"
        for note_id, title in acknowledged.items()
        if note_id not in stored
    ]
    found += [
        f"note {note_id} is {stored[note_id]!r}, acknowledged as {title!r}"
        for note_id, title in acknowledged.items()
        if note_id in stored and stored[note_id] != title
    ]
    found += [
        f"{title!r} is stored {count} times"
        for title, count in Counter(stored.values()).items()
        if count > 1
    ]
    return found


def kill_everything(server: Server, data_dir: Path) -> None:
    """SIGKILL the app (gunicorn and its workers) and the postmaster, as a power cut would."""
    postmaster = EmbeddedPostgres(data_dir).running_pid()
    assert postmaster is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
    server.process.wait(timeout=10)


@pytest.fixture
def servers(tmp_path):
    """Servers started by the test; whatever still runs at the end is stopped by its pid."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
    pid = EmbeddedPostgres(tmp_path / "data").running_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def test_acknowledged_notes_survive_sigkill_of_app_and_database(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir)
    servers.append(first)
    token = first.token()
    writes: list[Write] = []
    stop = threading.Event()
    writers = [
        threading.Thread(target=write_until, args=(stop, first.port, token, n, writes))
        for n in range(WRITERS)
    ]
    for thread in writers:
        thread.start()
    time.sleep(LOAD_SECONDS)
    stop.set()  # no new writes after this; those in flight are cut by the kill
    kill_everything(first, data_dir)
    for thread in writers:
        thread.join(timeout=30)

    acknowledged = {write.note_id: write.title for write in writes if write.status == 201}
    unanswered = [write for write in writes if write.status is None]
    assert acknowledged, "the writers got notes in before the kill"
    assert {write.status for write in writes} <= {201, None}, "no errors before the kill"

    second = Server(data_dir)
    servers.append(second)
    token = second.token()
    notes = all_notes(second, token)
    assert problems(acknowledged, notes) == []
    # Notes committed whose 201 was lost in the kill: there, but unknown to their writers.
    committed_unacknowledged = {
        note["title"]: note["id"] for note in notes if note["id"] not in acknowledged
    }
    assert set(committed_unacknowledged) <= {write.title for write in unanswered}

    # The writers retry what got no answer, with the same keys: nothing is written twice.
    for write in unanswered:
        post_note(second.port, token, write)
        assert write.status == 201, write
        if write.title in committed_unacknowledged:
            assert write.replayed and write.note_id == committed_unacknowledged[write.title]
        else:
            assert not write.replayed
    every_write = {write.note_id: write.title for write in writes}
    after_retries = all_notes(second, token)
    assert problems(every_write, after_retries) == []
    assert len(after_retries) == len(writes), "one note per write, each exactly once"
    print(
        f"\ncrash safety: {len(acknowledged)} acknowledged, "
        f"{len(acknowledged.keys() & {note['id'] for note in notes})} found after the kill; "
        f"{len(unanswered)} unanswered, of which {len(committed_unacknowledged)} had committed "
        f"(replayed on retry); {len(after_retries)} notes after retries for {len(writes)} writes"
    )

    # Negative control: the checker notices a lost and a duplicated note.
    lost_id, lost_title = next(iter(acknowledged.items()))
    with EmbeddedPostgres(data_dir).connect(autocommit=True) as database:
        database.execute("DELETE FROM notes_note WHERE id = %s", [lost_id])
        database.execute(
            "INSERT INTO notes_note (owner_id, title, body, tags, created, updated) "
            "SELECT owner_id, title, body, tags, created, updated FROM notes_note "
            "WHERE id = (SELECT max(id) FROM notes_note)"
        )
    damaged = all_notes(second, token)
    assert problems(every_write, damaged) == [
        f"acknowledged note {lost_id} ({lost_title!r}) is missing",
        f"{damaged[0]['title']!r} is stored 2 times",
    ]
    assert second.stop() == 0


def test_a_start_after_a_crash_waits_for_orphaned_backends(tmp_path, monkeypatch):
    """A backend busy in a query outlives its killed postmaster and holds the shared memory:
    PostgreSQL refuses to start until it exits. The start waits for it, or says why not."""
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    with server.connect(autocommit=True) as connection:
        connection.execute("CREATE TABLE kept AS SELECT 'before the crash' AS value")

    release = server.data_dir / "release-the-orphan"

    def busy_until_released() -> None:
        # A loop never waits on a latch, so nothing tells it the postmaster died until it ends.
        with suppress(psycopg.Error), server.connect(autocommit=True) as connection:
            connection.execute(
                "DO $$ DECLARE stop timestamptz := clock_timestamp() + interval '30 s'; "
                f"BEGIN WHILE clock_timestamp() < stop AND (pg_stat_file('{release}', true)).size "
                "IS NULL LOOP END LOOP; END $$"
            )

    busy = threading.Thread(target=busy_until_released)
    busy.start()
    patient = EmbeddedPostgres(server.data_dir)
    try:
        with server.connect(autocommit=True) as connection:
            while not connection.execute(
                "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'DO %%' AND state = 'active'"
            ).fetchone():
                time.sleep(0.02)
        os.kill(server.running_pid(), signal.SIGKILL)
        while server.running_pid() is not None:
            time.sleep(0.02)

        impatient = EmbeddedPostgres(server.data_dir)
        monkeypatch.setattr(cluster, "ORPHANS_EXIT_SECONDS", 0)
        with pytest.raises(EmbeddedPostgresError, match="processes of an earlier PostgreSQL"):
            impatient.ensure_running()
        assert "pre-existing shared memory block" in server.log_file.read_text()

        monkeypatch.undo()
        # A second from now the orphan's query ends; it notices the postmaster is gone, and exits.
        threading.Timer(1.0, release.touch).start()
        patient.ensure_running()
        refusals = server.log_file.read_text().count("pre-existing shared memory block")
        assert refusals >= 2, "the patient start was refused too, and tried again"
        with patient.connect() as connection:
            assert connection.execute("SELECT value FROM kept").fetchall() == [
                ("before the crash",)
            ]
    finally:
        release.touch()
        busy.join(timeout=40)
        server.leave()
        patient.leave()  # the last one out stops it
