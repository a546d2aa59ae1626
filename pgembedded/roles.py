"""The roles a PostgreSQL server plays for the code that drives it, as Protocols.

`EmbeddedPostgres` plays all of them. Other classes play some, shaped like it on purpose: a
configured server (DATABASE_URL) is protected like it, a mounted data folder (compose's `db`
volume) is restored into like it. A parameter annotated with a role says which part of the
embedded server's shape it relies on, and mypy checks each class that is passed for it.
"""

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import psycopg

from core.say import Say


class PostgresServer(Protocol):
    """A server to connect to, and the folder whose disk fills as it writes."""

    @property
    def pgdata(self) -> Path: ...

    def connection_settings(self) -> dict[str, Any]:
        """Django's settings for it (HOST, PORT, NAME, USER, PASSWORD)."""
        ...

    def connect(
        self, dbname: str = ..., connect_timeout: int = ..., **kwargs: Any
    ) -> psycopg.Connection[Any]: ...


class DataFolderServer(PostgresServer, Protocol):
    """A data folder this project's own PostgreSQL can be started on, over a private socket:
    what a restore replaces and replays into."""

    @property
    def data_dir(self) -> Path:
        """The folder beside `pgdata` where scratch copies, logs and locks go."""
        ...

    @property
    def socket_dir(self) -> Path: ...

    @property
    def port(self) -> int: ...

    @property
    def log_file(self) -> Path: ...

    def password(self) -> str: ...

    def start_lock(self) -> AbstractContextManager[object]:
        """Held while the folder's server is started, stopped or its data replaced."""
        ...

    def in_use(self) -> str | None:
        """Who uses the folder's server, in words; None when nobody does."""
        ...


class SupervisedServer(Protocol):
    """A server the supervisor keeps alive: it can tell whether it runs, and start again."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def pgdata(self) -> Path: ...

    @property
    def log_file(self) -> Path: ...

    def running_pid(self) -> int | None: ...

    def restart_if_stopped(self, say: Say) -> bool:
        """Start it unless it runs; True when this call started it."""
        ...
