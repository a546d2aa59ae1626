"""Where both kinds of copy live: the continuous archive (`base/`, `wal/`) and the pg_dump files."""

from pathlib import Path

from django.conf import settings


def default_folder() -> Path:
    """`BACKUP_DIR`, else `DATA_DIR/backups` (`.data/backups`): settings.BACKUP_DIR."""
    return settings.BACKUP_DIR
