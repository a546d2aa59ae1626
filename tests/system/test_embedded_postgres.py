"""The embedded PostgreSQL's lifecycle, on real servers in throwaway folders."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import EmbeddedPostgres
from pgembedded.programs import MAJOR_VERSION

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    instance = EmbeddedPostgres(tmp_path / "data")
    yield instance
    instance.leave()
    instance.stop()


def query(instance: EmbeddedPostgres, sql: str):
    with instance.connect(autocommit=True) as connection:
        cursor = connection.execute(sql)
        return cursor.fetchall() if cursor.description else None


def test_first_use_initialises_a_durable_socket_only_server(server):
    server.ensure_running()
    assert (server.pgdata / "PG_VERSION").read_text().strip() == MAJOR_VERSION
    assert query(server, "SHOW fsync") == [("on",)]
    assert query(server, "SHOW synchronous_commit") == [("on",)]
    assert query(server, "SHOW listen_addresses") == [("",)]
    assert query(server, "SELECT current_database()") == [("keepnotes",)]
    assert not list(server.data_dir.glob("postgres.initdb*")), "initdb leftovers"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs PostgreSQL moved off root")
def test_as_root_postgres_runs_without_root_privileges(server):
    server.ensure_running()
    pid = server.running_pid()
    status = Path(f"/proc/{pid}/status").read_text()
    outside_uid = int(
        next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]
    )
    own_namespace = os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    # Either in an unprivileged user namespace (root mapped away) or as an ordinary account.
    assert own_namespace or outside_uid != 0


def test_data_survives_stop_and_start_and_a_fresh_folder_has_none(tmp_path, server):
    server.ensure_running()
    query(server, "CREATE TABLE kept (value text); INSERT INTO kept VALUES ('still here')")
    server.leave()
    assert server.running_pid() is None, "the last user out stops the server"

    again = EmbeddedPostgres(server.data_dir)
    again.ensure_running()
    assert query(again, "SELECT value FROM kept") == [("still here",)]
    again.leave()

    fresh = EmbeddedPostgres(tmp_path / "fresh")
    fresh.ensure_running()
    assert query(fresh, "SELECT to_regclass('kept')") == [(None,)]
    fresh.leave()


def test_a_second_process_attaches_and_leaving_does_not_stop_it_under_others(server):
    server.ensure_running()
    pid = server.running_pid()
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from pgembedded.postgres import "
            "EmbeddedPostgres as E; s = E(Path(sys.argv[1])); s.ensure_running(); "
            "print(s.running_pid()); s.leave()",
            str(server.data_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(other.stdout) == pid, "attached to the running server, did not start another"
    assert server.running_pid() == pid, "still running: this process still uses it"
    assert query(server, "SELECT 1") == [(1,)]
    server.leave()
    assert server.running_pid() is None


def test_a_stale_pid_file_from_a_crash_does_not_block_start(server):
    server.ensure_running()
    server.leave()
    # After a crash, the pid file may name a process that is alive but is not PostgreSQL.
    with subprocess.Popen(["sleep", "60"]) as unrelated:
        (server.pgdata / "postmaster.pid").write_text(f"{unrelated.pid}\n{server.pgdata}\n")
        try:
            server.ensure_running()
            assert query(server, "SELECT 1") == [(1,)]
        finally:
            unrelated.kill()


def test_data_from_another_major_version_is_refused_and_left_alone(tmp_path):
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("17\n")
    before = sorted(p.name for p in pgdata.iterdir())
    with pytest.raises(
        EmbeddedPostgresError, match=r"holds PostgreSQL 17 data.*Nothing was changed"
    ):
        EmbeddedPostgres(tmp_path).ensure_running()
    assert sorted(p.name for p in pgdata.iterdir()) == before


def test_a_long_project_path_still_gets_a_working_socket(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    instance = EmbeddedPostgres(deep)
    assert len(str(instance.socket_dir)) < 100
    instance.ensure_running()
    try:
        assert query(instance, "SELECT 1") == [(1,)]
    finally:
        instance.leave()
        shutil.rmtree(instance.socket_dir, ignore_errors=True)  # in /tmp, not in tmp_path
