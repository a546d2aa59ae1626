"""The example's settings, read from the environment here rather than in config/settings.py, so
that deleting notes/ leaves none of them behind (docs/configuration.md lists them).

Each may still be set as a Django setting of the same name, which wins (the tests do that).
"""

from django.conf import settings

from core import env

_FROM_ENVIRONMENT = {
    # A bulk import (notes/imports.py) commits this many notes per transaction.
    "IMPORT_BATCH_SIZE": env.get_int("IMPORT_BATCH_SIZE", 500),
    # POST /api/v1/imports may be larger than MAX_REQUEST_BYTES, up to this. Not what 10,000
    # maximal notes would need (about 966 MiB, in one worker's memory): clients split bigger ones.
    "IMPORT_MAX_REQUEST_BYTES": env.get_int("IMPORT_MAX_REQUEST_BYTES", 64 * 1024 * 1024),
    # Imports one user may have queued or running; one more is refused with 429 and Retry-After.
    # Their batches wait in PostgreSQL (up to IMPORT_MAX_REQUEST_BYTES each): this bounds one
    # user's share.
    "IMPORTS_PER_USER": env.get_int("IMPORTS_PER_USER", 8),
    # One attachment's largest size: the front door refuses a longer body from its length, the
    # app refuses it from its length too (or as it reads, should it be longer).
    "ATTACHMENT_MAX_BYTES": env.get_int("ATTACHMENT_MAX_BYTES", 1024**3),
    # What one user's attachments may add up to (each counted, even when two hold the same bytes).
    "ATTACHMENT_QUOTA_BYTES": env.get_int("ATTACHMENT_QUOTA_BYTES", 10 * 1024**3),
}


def setting(name: str) -> int:
    return getattr(settings, name, _FROM_ENVIRONMENT[name])


def import_too_large(limit: int) -> str:
    """The 413's detail for an import body over `limit`, from the front door or the app."""
    return (
        f"An import body is at most {limit} bytes (IMPORT_MAX_REQUEST_BYTES); "
        "split it into several imports."
    )


def attachment_too_large(limit: int) -> str:
    """The 413's detail for an attachment over `limit`, from the front door or the app."""
    return f"An attachment is at most {limit} bytes (ATTACHMENT_MAX_BYTES); nothing was stored."
