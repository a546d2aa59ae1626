"""The project's PostgreSQL backend, starting the embedded server on first connection.

Any management command that touches the database (`shell`, `migrate`, `createsuperuser`,
`dbshell`, ...) then works whether `serve` is running or not.
"""

from pathlib import Path

from core.database import base
from pgembedded import postgres as embedded_postgres

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
