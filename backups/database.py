"""Django's connection as the backup commands use it: opened with one clear line on failure."""

from typing import cast

from django.conf import settings
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLWrapper

from backups.errors import BackupError
from core.errors import first_line
from pgembedded.errors import EmbeddedPostgresError


def connect(connection) -> None:
    """Open Django's connection (starting the embedded server), or explain in one line."""
    try:
        connection.ensure_connection()
    except EmbeddedPostgresError as error:
        raise BackupError(str(error)) from None
    except OperationalError as error:
        raise BackupError(
            f"Cannot connect to the database ({first_line(error, 'no answer')}). "
            "Check DATABASE_URL / DB_HOST."
        ) from None


def server_version(connection: BaseDatabaseWrapper) -> int:
    """The server's version number (180001 is 18.1). Django types its connection as any
    backend's; this project's ENGINE is always PostgreSQL's (core.database, pgembedded.backend)."""
    return cast(PostgreSQLWrapper, connection).pg_version


def describe_database(connection) -> str:
    where = connection.settings_dict
    if settings.EMBEDDED_DATABASE:
        return f"{where['NAME']} (embedded, data in {settings.DATA_DIR / 'postgres'})"
    return f"{where['NAME']} at {where['HOST']}:{where['PORT']}"
