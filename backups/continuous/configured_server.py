"""A configured server (DATABASE_URL / DB_HOST, e.g. the compose `db` service) as `Protection`
sees it: connections with Django's settings, and the disk whose free space is watched.

The server's own disk is not visible from here (another container): the disk watched is the
archive's, which on compose is the same Docker data root as the db volume.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from backups.tools import libpq_environment


@dataclass(frozen=True)
class ConfiguredServer:
    settings_dict: dict[str, Any]
    pgdata: Path  # the folder whose disk is watched (see above)

    def connection_settings(self) -> dict[str, Any]:
        return self.settings_dict

    def connect(
        self, dbname: str | None = None, connect_timeout: int = 5, **kwargs: Any
    ) -> psycopg.Connection[Any]:
        environ = libpq_environment(self.settings_dict)
        return psycopg.connect(
            host=environ.get("PGHOST"),
            port=environ.get("PGPORT"),
            user=environ.get("PGUSER"),
            password=environ.get("PGPASSWORD"),
            dbname=dbname or environ.get("PGDATABASE"),
            sslmode=environ.get("PGSSLMODE"),
            target_session_attrs=environ.get("PGTARGETSESSIONATTRS"),
            connect_timeout=connect_timeout,
            **kwargs,
        )
