"""Replicas starting at the same moment against an empty database migrate exactly once.

Four `manage.py prepare` processes (the start sequence `serve` runs before its web server) start
together while the test holds the migration lock: all of them queue on it and none migrates
until it is released; then exactly one applies the migrations and the others find them done.
"""

import subprocess
import sys
import time

import pytest

from pgembedded.postgres import EmbeddedPostgres
from server.startup import MIGRATION_LOCK_ID
from tests.support.databases import SECRET_KEY, database_url
from tests.support.processes import REPO, command_env

PROCESSES = 4


@pytest.fixture
def database(tmp_path):
    server = EmbeddedPostgres(tmp_path / "db")
    server.ensure_running()
    yield server
    server.leave()


def waiting_for_the_lock(connection) -> int:
    return connection.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()[0]


def test_replicas_starting_at_once_migrate_exactly_once(tmp_path, database):
    environ = command_env(
        tmp_path / "app", DATABASE_URL=database_url(database), DJANGO_SECRET_KEY=SECRET_KEY
    )
    with database.connect(autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        processes = [
            subprocess.Popen(
                [sys.executable, "manage.py", "prepare"],
                cwd=REPO,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        deadline = time.monotonic() + 60
        while waiting_for_the_lock(connection) < PROCESSES and time.monotonic() < deadline:
            assert all(process.poll() is None for process in processes), "none may finish"
            time.sleep(0.05)
        # The lock is really taken: every process waits on it, and nothing is migrated yet.
        assert waiting_for_the_lock(connection) == PROCESSES
        assert all(process.poll() is None for process in processes)
        table = connection.execute("SELECT to_regclass('django_migrations')").fetchone()[0]
        assert table is None, "no process migrated while another held the lock"
        connection.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])

    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * PROCESSES, outputs
    assert all("Ready to serve" in output for output in outputs)
    applied = [line for output in outputs for line in output.splitlines() if "Applying" in line]
    up_to_date = sum("Database schema is up to date" in output for output in outputs)
    assert len(applied) == 1 and up_to_date == PROCESSES - 1, outputs

    with database.connect() as connection:
        rows, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT (app, name)) FROM django_migrations"
        ).fetchone()
    assert rows == distinct, "no migration recorded twice"
    assert applied == [f"Applying {rows} migrations"], "every migration, by that one process"
