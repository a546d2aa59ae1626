"""PostgreSQL replaying the WAL in a scratch folder: the recovery settings written into it, the
server started on it with a private socket, waited for until it is promoted, then stopped; and,
when it stops instead, why, from its log.

point_in_time.py chooses what to replay (the base backup, the WAL, the target); this module only
runs PostgreSQL on it. The restore drill (verify_restore.py) runs it the same way.
"""

import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from backups.errors import BackupError
from pgembedded import access, cluster
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import SUPERUSER
from pgembedded.roles import DataFolderServer

RESTORE_WAL = "restore_wal"  # inside the scratch folder, so PostgreSQL's user can read it
RECOVERY_SECONDS = 600

# Run on the recovered server while it is still in its scratch folder; raising leaves the live
# data folder as it was.
type Inspect = Callable[[DataFolderServer], None]


def write_recovery_settings(
    scratch: Path, restore_command: str, target: datetime | None, timeline: int | str
) -> None:
    settings = [
        f"restore_command = '{restore_command}'",
        "recovery_target_action = 'promote'",
        f"recovery_target_timeline = '{timeline}'",
        "archive_mode = 'off'",
    ]
    if target is not None:
        settings.append(f"recovery_target_time = '{target.isoformat()}'")
    with open(scratch / "postgresql.auto.conf", "a") as conf:
        conf.write("\n# manage.py restore\n" + "\n".join(settings) + "\n")
    (scratch / "recovery.signal").touch()


def recover(server: DataFolderServer, scratch: Path, inspect: Inspect | None = None) -> str:
    """Start PostgreSQL on `scratch`, wait for the end of recovery, stop it: where it got to.

    Meanwhile only the superuser may connect, over the socket, without a password (the socket
    folder is ours alone, and there is no TCP): the restored roles hold the passwords of the
    time of the backup, and the password file may have been lost with the data. Once promoted,
    the superuser gets this folder's password, and pg_hba.conf its rules back.
    """
    access.private_socket_dir(server.socket_dir, server.data_dir)  # gone with the data folder?
    # The embedded server's `postgres`; the configured one's own (compose: POSTGRES_USER).
    superuser = server.connection_settings().get("USER") or SUPERUSER
    hba = scratch / "pg_hba.conf"
    rules = hba.read_text()
    hba.write_text(f"local all {superuser} trust\n")
    log_start = server.log_file.stat().st_size if server.log_file.exists() else 0
    try:
        cluster.start(
            data_dir=server.data_dir,
            pgdata=scratch,
            socket_dir=server.socket_dir,
            port=server.port,
            listen_addresses="",
            log_file=server.log_file,
            ready=lambda: cluster.running_pid(scratch) is not None and _answers(server),
            say=lambda message: None,
        )
    except EmbeddedPostgresError:
        cluster.stop(scratch)  # after a time-out it may run all the same
        raise _stopped(server, log_start) from None
    except BaseException:  # `_answers` raised, or Ctrl-C: it may run
        cluster.stop(scratch)
        raise
    deadline = time.monotonic() + RECOVERY_SECONDS
    try:
        while time.monotonic() < deadline:
            if cluster.running_pid(scratch) is None:
                raise _stopped(server, log_start)
            if _recovery_ended(server):
                break
            time.sleep(0.1)
        else:
            raise BackupError(f"Recovery did not end within {RECOVERY_SECONDS} s.")
        with server.connect(dbname="postgres", autocommit=True) as connection:
            connection.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(superuser), sql.Literal(server.password())
                )
            )
            connection.execute("CHECKPOINT")
        if inspect is not None:
            inspect(server)
    finally:
        cluster.stop(scratch)
        hba.write_text(rules)
    shutil.rmtree(scratch / RESTORE_WAL, ignore_errors=True)
    _drop_restore_settings(scratch)
    return _reached(server, log_start)


def _recovery_ended(server: DataFolderServer) -> bool:
    try:
        with server.connect(dbname="postgres", connect_timeout=2) as connection:
            row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and not row[0]
    except psycopg.OperationalError:
        return False  # stopping after a FATAL, say: the caller looks at the process next


def _answers(server: DataFolderServer) -> bool:
    """Whether the server takes connections yet. A refusal (starting up, not consistent yet) is
    a no; anything else, such as an unreadable password file, is raised: waiting would only turn
    it into a time-out that hides it."""
    try:
        with server.connect(dbname="postgres", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _drop_restore_settings(scratch: Path) -> None:
    conf = scratch / "postgresql.auto.conf"
    text = conf.read_text()
    conf.write_text(text.split("\n# manage.py restore\n")[0] + "\n")


def _log_since(server: DataFolderServer, offset: int) -> str:
    with open(server.log_file, "rb") as file:
        file.seek(offset)
        return file.read().decode(errors="replace")


class TargetNotReached(BackupError):
    """The WAL ended before a commit after the target time: none was archived after it."""


def _stopped(server: DataFolderServer, offset: int) -> BackupError:
    return stopped_error(_log_since(server, offset), server.log_file)


# What PostgreSQL tells a client that connects while it starts, recovers or stops: the poll
# above gets these too, and as they can be the log's last FATAL they would hide the cause.
_REFUSED_CONNECTION = "the database system is "


def stopped_error(log: str, log_file: Path) -> BackupError:
    """Why recovery stopped: the last FATAL in `log` that is not a refused connection."""
    fatal = [line.split("FATAL:", 1)[1].strip() for line in log.splitlines() if "FATAL:" in line]
    reasons = [reason for reason in fatal if not reason.startswith(_REFUSED_CONNECTION)]
    text = reasons[-1] if reasons else f"see {log_file}"
    if "before configured recovery target" in text:
        return TargetNotReached(
            f"PostgreSQL stopped while replaying the WAL: {text}: the archive ends before that "
            f"time (`restore --list`). Nothing was changed."
        )
    return BackupError(f"PostgreSQL stopped while replaying the WAL: {text}. Nothing was changed.")


def _reached(server: DataFolderServer, offset: int) -> str:
    for line in reversed(_log_since(server, offset).splitlines()):
        if "recovery stopping" in line or "redo done at" in line:
            return line.split("LOG:", 1)[-1].strip()
    return "end of WAL"
