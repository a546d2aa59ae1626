"""Why a restore's recovery stopped, read from PostgreSQL's log. The poll that waits for the end of
recovery connects meanwhile, and PostgreSQL logs each refused connection as a FATAL too: one of
those may come last, after the line that says why (CI, 2026-12-02). And the poll that waits for
the scratch server to start takes only a refused connection for "not yet".
"""

import pytest

from backups.continuous.recovery import TargetNotReached, _answers, stopped_error
from pgembedded.postgres import EmbeddedPostgres

TARGET_NOT_REACHED = """\
14:53:01.120 UTC [4101] LOG:  starting point-in-time recovery to 2026-12-02 14:52:58
14:53:01.131 UTC [4101] LOG:  redo starts at 0/2000028
14:53:01.140 UTC [4101] FATAL:  recovery ended before configured recovery target was reached
14:53:01.141 UTC [4107] FATAL:  the database system is in recovery mode
14:53:01.142 UTC [4099] LOG:  startup process (PID 4101) exited with exit code 1
"""


def test_a_refused_connection_logged_last_does_not_hide_why_recovery_stopped():
    error = stopped_error(TARGET_NOT_REACHED, "postgres.log")
    assert isinstance(error, TargetNotReached), error
    assert "recovery ended before configured recovery target" in str(error)


def test_the_reason_is_the_last_fatal_that_is_not_a_refused_connection():
    log = TARGET_NOT_REACHED.replace(
        "recovery ended before configured recovery target was reached",
        "could not locate required checkpoint record at 0/2000060",
    )
    error = stopped_error(log, "postgres.log")
    assert not isinstance(error, TargetNotReached)
    assert "could not locate required checkpoint record" in str(error)
    assert "in recovery mode" not in str(error)


def test_without_a_reason_the_message_points_at_the_log():
    only_refusals = "14:53:01.141 UTC [4107] FATAL:  the database system is starting up\n"
    assert "see postgres.log" in str(stopped_error(only_refusals, "postgres.log"))


def test_the_wait_for_the_scratch_server_is_told_a_refusal_from_a_fault(tmp_path):
    server = EmbeddedPostgres(tmp_path)  # never started: nothing listens on its socket
    assert _answers(server) is False
    server.password_file.unlink()
    server.password_file.mkdir()  # a password file that cannot be read
    with pytest.raises(IsADirectoryError):
        _answers(server)
