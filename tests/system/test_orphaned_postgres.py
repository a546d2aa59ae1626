"""A killed `serve` leaves its PostgreSQL running (the postmaster has a session of its own).
Whatever comes next, a restore or a new `serve`, finds it first: by its lock files, and by its
own command line once its data folder is gone. A server left on a deleted data folder would
otherwise shut down by itself within a minute (PostgreSQL checks its lock file every 60 s) and
delete its socket file on the way out, which by then would be the new server's.
"""

import os
import signal
from pathlib import Path

from pgembedded import cluster
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import EmbeddedPostgres


def postmasters(data_dir: Path) -> list[int]:
    return cluster.postmasters(data_dir, EmbeddedPostgres(data_dir).socket_dir)


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
