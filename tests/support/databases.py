"""A separate embedded PostgreSQL as a configured database (DATABASE_URL), for outage tests."""

import secrets

from pgembedded.postgres import EmbeddedPostgres

SECRET_KEY = secrets.token_urlsafe(50)


def database_url(server: EmbeddedPostgres) -> str:
    """The server's Unix socket and generated password as DATABASE_URL."""
    return server.url()
