"""The data folder of a configured server, mounted here while that server is stopped: the
compose `db` volume, which `restore --to / --latest` rebuilds in place.

Shaped like the embedded server for `point_in_time.restore_to`: the restore is replayed in a
scratch folder beside the data folder (the same volume, so it can be renamed into place), by
this image's own PostgreSQL 18, and the data it replaces is moved aside, never deleted. The
`db` service then starts on the result (its entrypoint gives the files to its `postgres` user).
"""

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import psycopg

from backups.tools import libpq_environment
from core.files import locked_file

PORT = 5432  # of the restore's own server: a private socket, no TCP


@dataclass(frozen=True)
class MountedDataFolder:
    pgdata: Path
    # The configured server's (DB_HOST...): who it is, and whether it runs.
    settings_dict: dict[str, Any]

    @property
    def data_dir(self) -> Path:
        return self.pgdata.parent

    @property
    def socket_dir(self) -> Path:
        return Path(tempfile.gettempdir()) / "keepnotes-restore"

    @property
    def port(self) -> int:
        return PORT

    @property
    def log_file(self) -> Path:
        return self.data_dir / "keepnotes-restore.log"

    def connection_settings(self) -> dict[str, Any]:
        return self.settings_dict

    def password(self) -> str:
        return libpq_environment(self.settings_dict).get("PGPASSWORD", "")

    def connect(
        self, dbname: str = "postgres", connect_timeout: int = 5, **kwargs: Any
    ) -> psycopg.Connection[Any]:
        """The restore's own server, over its socket."""
        kwargs.setdefault("password", self.password())
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=libpq_environment(self.settings_dict)["PGUSER"],
            dbname=dbname,
            connect_timeout=connect_timeout,
            **kwargs,
        )

    def start_lock(self) -> TextIO:
        """Held (`with`) while a restore replaces the folder: one restore at a time."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return locked_file(self.data_dir / "keepnotes-restore.lock")

    def in_use(self) -> str | None:
        """The configured server, when it answers: it runs on this folder (another container)."""
        environ = libpq_environment(self.settings_dict)
        host, port = environ.get("PGHOST", "db"), int(environ.get("PGPORT", PORT))
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError:
            return None
        return (
            f"The database server at {host}:{port} is running on {self.pgdata} (on compose: "
            f"`docker compose stop`, then run the restore again)"
        )
