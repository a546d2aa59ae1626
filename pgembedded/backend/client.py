from typing import TYPE_CHECKING

from django.db.backends.postgresql import client

from pgembedded import programs

if TYPE_CHECKING:
    from .base import DatabaseWrapper  # which imports this module


class DatabaseClient(client.DatabaseClient):
    """`dbshell` with the wheel's own psql: no PostgreSQL client needs to be installed."""

    connection: "DatabaseWrapper"

    def runshell(self, parameters):
        self.connection.start_embedded_server()
        super().runshell(parameters)

    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        args, env = super().settings_to_cmd_args_env(settings_dict, parameters)
        args[0] = str(programs.binaries() / "psql")
        return args, env
