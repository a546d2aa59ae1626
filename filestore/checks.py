"""Is the protected store usable: checked by `serve`/`prepare` at start-up, and `check --deploy`."""

import os
import tempfile
from pathlib import Path

from django.core import checks

from . import archive as file_archive
from .durable import make_folder
from .storage import ProtectedS3Storage, protected_storage


def problems() -> list[str]:
    """What stops files being stored, one sentence each; empty when nothing does."""
    storage = protected_storage()
    found = _writable(storage.staging_dir, "PROTECTED_FILES_DIR (its upload folder)")
    if isinstance(storage, ProtectedS3Storage):
        found += _bucket_reachable(storage)
    else:
        found += _writable(Path(storage.location), "PROTECTED_FILES_DIR")
    archive = file_archive.from_settings()
    if archive is not None:
        found += _writable(archive.folder, "the file archive (BACKUP_DIR/files)")
    return found


def _writable(folder: Path, what: str) -> list[str]:
    try:
        make_folder(folder)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        return [f"{what} {folder} is not a writable folder: {error.strerror or error}."]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [f"{what} {folder} is not writable by this user."]
    return []


def _bucket_reachable(storage: ProtectedS3Storage) -> list[str]:
    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except Exception as error:  # any boto3/botocore failure: say it, the start stops
        bucket = storage.bucket_name
        return [f"The file store's bucket {bucket!r} (FILES_URL) is unusable: {error}."]
    return []


def check_protected_storage(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [checks.Error(problem, id="filestore.E001") for problem in problems()]
