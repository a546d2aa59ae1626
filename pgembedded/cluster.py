"""One PostgreSQL data folder (a "database cluster") and its server process, the postmaster:
make the folder, find the server, start it, stop it. Sharing it among processes is postgres.py's.

A crash leaves traces that block the next start: lock files whose pid now belongs to another
program (or to the killed postmaster, a zombie not reaped yet), and orphaned backends that hold
the old shared memory until they notice and exit. The start clears the first and waits out the
second, up to ORPHANS_EXIT_SECONDS.
"""

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from core.processes import process_alive
from core.say import Say
from pgembedded import programs
from pgembedded.errors import EmbeddedPostgresError

# How long a start waits for the orphaned processes of a killed PostgreSQL to exit.
ORPHANS_EXIT_SECONDS = 30
_SHARED_MEMORY_IN_USE = "pre-existing shared memory block"


def initdb(*, data_dir: Path, pgdata: Path, superuser: str, password: str) -> None:
    """Make `pgdata`, whose superuser asks for `password`; all or nothing."""
    scratch = data_dir / "postgres.initdb"
    shutil.rmtree(scratch, ignore_errors=True)  # a half-done initdb from a crash
    scratch.mkdir(mode=0o700)
    # A copy for initdb, which may run as `nobody`: the password file itself stays ours.
    password_draft = data_dir / "postgres.initdb.password"
    fd = os.open(password_draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(password + "\n")
    process = programs.run(
        [
            str(programs.server_binaries(data_dir) / "initdb"),
            "--pgdata",
            str(scratch),
            "--username",
            superuser,
            "--encoding",
            "UTF8",
            # The builtin provider needs no operating-system locale: same result everywhere.
            "--locale-provider=builtin",
            "--locale=C.UTF-8",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--pwfile",
            str(password_draft),
        ],
        data_dir=data_dir,
        paths=[scratch, password_draft],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate()
    if process.returncode != 0:
        raise EmbeddedPostgresError(f"initdb failed:\n{output}")
    password_draft.unlink()
    # Renamed into place only once complete: a crash never leaves a half-made data folder.
    scratch.rename(pgdata)


def running_pid(pgdata: Path) -> int | None:
    """The postmaster's pid when a live PostgreSQL owns this folder."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        if os.path.isdir("/proc"):
            return None
        comm = "postgres"  # no /proc (macOS): trust kill(0) below
    if comm != "postgres" or not process_alive(pid):
        return None
    return pid


def postmasters(data_dir: Path, socket_dir: Path) -> list[int]:
    """Every live postmaster started on a folder in `data_dir`, whatever became of that folder.

    postmaster.pid alone misses one whose data folder was deleted or replaced (by a restore):
    such a server runs on, and about a minute later notices, shuts down, and deletes its socket
    file on the way out. Its socket lock file names it too, and so does its own command line
    (`postgres -D FOLDER`), which also finds it once both lock files are gone.
    """
    witnesses = [*data_dir.glob("*/postmaster.pid"), *socket_dir.glob(".s.PGSQL.*.lock")]
    candidates = {pid for path in witnesses if (pid := _pid_in(path)) is not None}
    if os.path.isdir("/proc"):
        candidates |= {int(name) for name in os.listdir("/proc") if name.isdigit()}
    return sorted(pid for pid in candidates if _postmaster_of(pid, data_dir))


def stop(pgdata: Path) -> None:
    """Fast shutdown: clients are disconnected, committed work is on disk (checkpoint)."""
    pid = running_pid(pgdata)
    if pid is not None:
        stop_postmaster(pid)


def stop_postmaster(pid: int) -> None:
    """Fast shutdown of the postmaster `pid`; returns once it has exited."""
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 60
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_alive(pid):
        raise EmbeddedPostgresError(f"PostgreSQL (pid {pid}) did not stop within 60 s.")


def start(
    *,
    data_dir: Path,
    pgdata: Path,
    socket_dir: Path,
    port: int,
    listen_addresses: str,
    log_file: Path,
    ready: Callable[[], bool],
    say: Say,
) -> None:
    """Start the server on `pgdata` and wait until `ready()` (it accepts connections)."""
    say(f"Starting PostgreSQL {programs.MAJOR_VERSION} (data in {pgdata})")
    # After a crash (the postmaster killed), its orphaned backends hold the old shared memory
    # until they notice and exit, usually within a second; until then PostgreSQL refuses to
    # start ("pre-existing shared memory block ... is still in use"). Wait for them.
    deadline = time.monotonic() + ORPHANS_EXIT_SECONDS
    for attempt in itertools.count():
        log_start = log_file.stat().st_size if log_file.exists() else 0
        try:
            _start_once(data_dir, pgdata, socket_dir, port, listen_addresses, log_file, ready)
            return
        except EmbeddedPostgresError:
            refused = _SHARED_MEMORY_IN_USE in _text_since(log_file, log_start)
            if not refused:
                raise
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL cannot start: processes of an earlier PostgreSQL still use "
                    f"{pgdata} after {ORPHANS_EXIT_SECONDS} s. Stop them (see "
                    f"`ps -ef | grep postgres`), then start again; see {log_file}."
                ) from None
            if attempt == 0:
                say("Waiting for the processes of a crashed PostgreSQL to exit")
            time.sleep(0.2)


def _start_once(
    data_dir: Path,
    pgdata: Path,
    socket_dir: Path,
    port: int,
    listen_addresses: str,
    log_file: Path,
    ready: Callable[[], bool],
) -> None:
    _clear_stale_lock_files(data_dir, pgdata, socket_dir)
    # The log holds the text of failing statements: for this user only (older versions made
    # it 0644). PostgreSQL writes it through this descriptor, whichever user it runs as.
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "a") as log:
        process = programs.run(
            [
                str(programs.server_binaries(data_dir) / "postgres"),
                "-D",
                str(pgdata),
                "-k",
                str(socket_dir.resolve()),
                "-p",
                str(port),
                "-c",
                f"listen_addresses={listen_addresses}",
                # A folder restored from a cluster member's base backup (Patroni's) has a
                # postgresql.conf that names that node's files and standbys: this server uses
                # its own folder's files, and runs alone (no standby would confirm a commit).
                "-c",
                f"hba_file={pgdata / 'pg_hba.conf'}",
                "-c",
                f"ident_file={pgdata / 'pg_ident.conf'}",
                "-c",
                "synchronous_standby_names=",
                # Durability is the point of this project: never trade it for speed.
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                "-c",
                "full_page_writes=on",
            ],
            data_dir=data_dir,
            paths=[pgdata, socket_dir],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C reaches the app, which then stops PostgreSQL in order.
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedPostgresError(
                f"PostgreSQL exited during start-up (code {process.returncode}); "
                f"see {log_file}:\n{_tail(log_file)}"
            )
        # Its own answer: on a socket another server holds, that one would answer instead.
        if _says_ready(pgdata, process.pid) and ready():
            return
        time.sleep(0.02)
    raise EmbeddedPostgresError(f"PostgreSQL did not start within 60 s; see {log_file}")


def _says_ready(pgdata: Path, pid: int) -> bool:
    """Whether postmaster.pid names `pid` and says "ready", as pg_ctl reads it: written once the
    server listens (its socket taken) and accepts connections, never by one that failed."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return False
    return len(lines) > 7 and lines[0] == str(pid) and lines[7].strip() == "ready"


def _clear_stale_lock_files(data_dir: Path, pgdata: Path, socket_dir: Path) -> None:
    """Lock files left by a crash block start-up when their pid now belongs to another
    program, or to the killed postmaster itself while it waits to be reaped (a zombie)."""
    if running_pid(pgdata) is not None:
        return
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    # A live postmaster's socket lock stays, whatever became of its data folder: PostgreSQL
    # then refuses to start on that socket instead of taking it over, and two servers never
    # share a socket path (the other one would delete the socket file when it stops).
    live = postmasters(data_dir, socket_dir)
    for socket_lock in socket_dir.glob(".s.PGSQL.*.lock"):
        if _pid_in(socket_lock) not in live:
            socket_lock.unlink(missing_ok=True)


def _pid_in(lock_file: Path) -> int | None:
    """The pid on the first line of a PostgreSQL lock file."""
    try:
        return int(lock_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a live postmaster started on a folder in `data_dir` (its -D argument).

    Backends and other programs never match: PostgreSQL rewrites its children's command lines.
    """
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:  # gone, or no /proc (macOS): then trust the lock file's pid
        return not os.path.isdir("/proc") and process_alive(pid)
    except OSError:
        return False
    if os.path.basename(args[0]) != b"postgres" or b"-D" not in args[:-1]:
        return False
    folder = Path(os.fsdecode(args[args.index(b"-D") + 1]))
    return folder.parent.resolve() == data_dir.resolve() and process_alive(pid)


def _text_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
