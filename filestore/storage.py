"""The protected store's backends, chosen by STORAGES["protected"] (config/settings.py).

Both keep files under their content's name and never overwrite one: `place` puts a finished,
fsynced temporary file under its name unless a file is already there. Uploads are first written
to `staging_dir`, a local folder (on S3 too: the name is known only once the body is read).
"""

import os
from pathlib import Path
from typing import final

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, storages
from storages.backends.s3 import S3Storage

from core.files import fsync_directory

from .durable import make_folder
from .names import is_name

STAGING = ".incoming"


def protected_storage() -> "ProtectedFileSystemStorage | ProtectedS3Storage":
    """For `FileField(storage=protected_storage)`: the configured store, looked up lazily."""
    storage = storages["protected"]
    if not isinstance(storage, ProtectedFileSystemStorage | ProtectedS3Storage):
        raise ImproperlyConfigured(
            'STORAGES["protected"] must be filestore.storage.ProtectedFileSystemStorage or '
            f"ProtectedS3Storage, not {type(storage).__name__}."
        )
    return storage


def _checked(name: str) -> str:
    if not is_name(name):
        raise ValueError(f"{name!r} is not a stored file's name")
    return name


class ProtectedFileSystemStorage(FileSystemStorage):
    """A folder (PROTECTED_FILES_DIR): a folder in DATA_DIR, or a volume."""

    def __init__(self, **options):
        options.setdefault("location", settings.PROTECTED_FILES_DIR)
        options.setdefault("base_url", None)  # never served by URL: the app authorises each read
        super().__init__(**options)

    @property
    def staging_dir(self) -> Path:
        return Path(self.location) / STAGING

    def local_path(self, name: str) -> Path:
        return Path(self.path(_checked(name)))

    def place(self, *, path: Path, name: str) -> bool:
        """Move the fsynced `path` to `name` unless there (then drop `path`, and refresh the
        name's time so that the orphan sweep spares it): True when placed now."""
        target = self.local_path(name)
        if target.is_file():
            path.unlink()
            os.utime(target)
            return False
        make_folder(target.parent)
        os.chmod(path, self.file_permissions_mode or 0o600)
        # link(2) fails if the name exists: another upload of the same bytes won the race.
        try:
            os.link(path, target)
        except FileExistsError:
            os.utime(target)
        path.unlink()
        fsync_directory(target.parent)
        fsync_directory(path.parent)
        return True

    def stored_names(self) -> list[tuple[str, float]]:
        """(name, modification time) of every stored file."""
        root = Path(self.location)
        found = []
        if root.is_dir():
            for prefix in root.iterdir():
                if prefix.name == STAGING or not prefix.is_dir():
                    continue
                for path in prefix.iterdir():
                    name = f"{prefix.name}/{path.name}"
                    if is_name(name):
                        found.append((name, path.stat().st_mtime))
        return found

    def remove(self, name: str) -> None:
        target = self.local_path(name)
        target.unlink(missing_ok=True)
        fsync_directory(target.parent)


@final  # never also a ProtectedFileSystemStorage: isinstance() tells the two apart
class ProtectedS3Storage(S3Storage):
    """An S3-compatible bucket (FILES_URL), through django-storages: several app instances, or
    Kubernetes. S3 acknowledges a PUT once the object is durable."""

    def __init__(self, **options):
        options.setdefault("file_overwrite", True)  # the name is the content: same bytes
        options.setdefault("default_acl", None)
        options.setdefault("querystring_auth", True)
        super().__init__(**options)

    @property
    def staging_dir(self) -> Path:
        return Path(settings.PROTECTED_FILES_DIR) / STAGING

    def place(self, *, path: Path, name: str) -> bool:
        key = self._normalize_name(_checked(name))
        try:
            if self.exists(name):
                # A copy onto itself renews its time, so that the orphan sweep spares it.
                self.bucket.Object(key).copy_from(
                    CopySource={"Bucket": self.bucket_name, "Key": key},
                    MetadataDirective="REPLACE",
                )
                return False
            self.bucket.upload_file(str(path), key)
            return True
        finally:
            path.unlink(missing_ok=True)

    def stored_names(self) -> list[tuple[str, float]]:
        prefix = self._normalize_name("")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        found = []
        for item in self.bucket.objects.filter(Prefix=prefix):
            name = item.key[len(prefix) :]
            if is_name(name):
                found.append((name, item.last_modified.timestamp()))
        return found

    def remove(self, name: str) -> None:
        self.delete(_checked(name))
