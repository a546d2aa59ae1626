"""The project's PostgreSQL backend, starting the embedded server on first connection.

Any management command that touches the database (`shell`, `migrate`, `createsuperuser`,
`dbshell`, ...) then works whether `serve` is running or not.
"""

from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

from core.database import base
from pgembedded import postgres as embedded_postgres
from pgembedded.errors import EmbeddedPostgresError

from .client import DatabaseClient


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient

    def embedded_server(self) -> embedded_postgres.EmbeddedPostgres:
        return embedded_postgres.for_data_dir(Path(self.settings_dict["EMBEDDED_DATA_DIR"]))

    def start_embedded_server(self) -> None:
        """Start (or join) the server; settings read before its first start lack its password."""
        server = self.embedded_server()
        server.ensure_running()
        # In place: pg_dump and psql read it from here (PGPASSWORD), so does a connection pool.
        self.settings_dict["PASSWORD"] = server.password()

    def get_new_connection(self, conn_params):
        self.start_embedded_server()
        conn_params["password"] = self.settings_dict["PASSWORD"]
        return super().get_new_connection(conn_params)


def embedded_server(alias: str = DEFAULT_DB_ALIAS) -> embedded_postgres.EmbeddedPostgres:
    """The embedded server behind the database `alias` (settings.EMBEDDED_DATABASE)."""
    database = connections[alias]
    if not isinstance(database, DatabaseWrapper):
        raise EmbeddedPostgresError(
            f"The database {alias!r} is not the embedded one (its ENGINE is "
            f"{database.settings_dict['ENGINE']!r}): there is no embedded server to run."
        )
    return database.embedded_server()
