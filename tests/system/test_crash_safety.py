"""Crash safety, for real: the app server and PostgreSQL are killed (SIGKILL) while writers are
creating notes; after a restart every note the API acknowledged with 201 is there exactly once,
and retrying the writes that got no answer, with their Idempotency-Keys, duplicates nothing.
"""

import os
import signal
import threading
import time
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest

from pgembedded import cluster
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import EmbeddedPostgres
from tests.support.note_writers import Write, all_notes, post_note, problems, write_until
from tests.support.processes import Server

WRITERS = 8
LOAD_SECONDS = 1.5


def kill_everything(server: Server, data_dir: Path) -> None:
    """SIGKILL `serve` with its WSGI workers, and the postmaster, as a power cut would."""
    postmaster = EmbeddedPostgres(data_dir).running_pid()
    assert postmaster is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
    server.process.wait(timeout=10)


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
    killed_at = time.monotonic()
    kill_everything(first, data_dir)
    for thread in writers:
        thread.join(timeout=30)

    acknowledged = {write.note_id: write.title for write in writes if write.status == 201}
    refused = [write for write in writes if write.status not in (201, None)]
    assert acknowledged, "the writers got notes in before the kill"
    assert all(write.answered_at >= killed_at for write in refused), "no errors before the kill"
    # The front door outlives the app by a moment (it is told when its parent dies): a write in
    # flight then gets its 503, which, like a cut connection, leaves the outcome unknown.
    assert {write.status for write in refused} <= {503}, refused
    outcome_unknown = [write for write in writes if write.status != 201]

    second = Server(data_dir)
    servers.append(second)
    token = second.token()
    notes = all_notes(second, token)
    assert problems(acknowledged, notes) == []
    # Notes committed whose 201 was lost in the kill: there, but unknown to their writers.
    committed_unacknowledged = {
        note["title"]: note["id"] for note in notes if note["id"] not in acknowledged
    }
    assert set(committed_unacknowledged) <= {write.title for write in outcome_unknown}

    # The writers retry what got no 201, with the same keys: nothing is written twice.
    for write in outcome_unknown:
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
        f"{len(outcome_unknown)} unanswered or refused ({len(refused)} a 503 from the front), "
        f"of which {len(committed_unacknowledged)} had committed "
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
