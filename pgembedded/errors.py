"""The one error the embedded PostgreSQL raises, shared by its modules (so none imports another
only for it)."""


class EmbeddedPostgresError(RuntimeError):
    """Something a user must fix; the message says what."""
