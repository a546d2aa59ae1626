"""A separate embedded PostgreSQL as a configured database (DATABASE_URL), for outage tests."""

import secrets
from urllib.parse import quote

from pgembedded.postgres import EmbeddedPostgres

SECRET_KEY = secrets.token_urlsafe(50)


def database_url(server: EmbeddedPostgres) -> str:
    """The server's Unix socket as DATABASE_URL (a quoted path as host, as libpq allows)."""
    socket_dir = quote(str(server.socket_dir.resolve()), safe="")
    return f"postgres://postgres@{socket_dir}:{server.port}/keepnotes"
