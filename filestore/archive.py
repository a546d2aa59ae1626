"""The local archive copy of stored files, `BACKUP_DIR/files/<sha256[:2]>/<sha256>`.

Written by `file_store` before it returns, read by `restore`, copied off-site by `protect`.
Immutable like the store: a name is written once. A file no row names any more stays until no
restorable point can name it: `<name>.unnamed` records since when no row named it (removed if a
row names it again), and the retention in backups/ prunes it once that is older than the oldest
restorable point.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.files import fsync_directory

from .durable import copy_file, file_sha256
from .names import is_name, sha256_of_name

UNNAMED = ".unnamed"


@dataclass(frozen=True)
class FileArchive:
    folder: Path

    def path(self, name: str) -> Path:
        if not is_name(name):
            raise ValueError(f"{name!r} is not a stored file's name")
        return self.folder / name

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def put(self, *, source: Path, name: str) -> bool:
        """Archive `source` as `name` (durably) unless already there; True when written now."""
        self.clear_unnamed(name)
        destination = self.path(name)
        if destination.is_file():
            return False
        copy_file(source=source, destination=destination, mode=0o400)
        return True

    def intact(self, name: str) -> bool:
        """Whether `name` is archived with the content its name says."""
        path = self.path(name)
        return path.is_file() and file_sha256(path) == sha256_of_name(name)

    def names(self) -> Iterator[str]:
        if not self.folder.is_dir():
            return
        for prefix in sorted(self.folder.iterdir()):
            if not prefix.is_dir():
                continue
            for path in sorted(prefix.iterdir()):
                name = f"{prefix.name}/{path.name}"
                if is_name(name):
                    yield name

    def size(self, name: str) -> int:
        return self.path(name).stat().st_size

    # -- retention ---------------------------------------------------------------------------------

    def unnamed_since(self, name: str) -> datetime | None:
        try:
            text = (self.folder / (name + UNNAMED)).read_text().strip()
        except FileNotFoundError:
            return None
        return datetime.fromisoformat(text)

    def mark_unnamed(self, name: str, since: datetime) -> None:
        marker = self.folder / (name + UNNAMED)
        if not marker.exists():
            marker.write_text(since.astimezone(UTC).isoformat() + "\n")

    def clear_unnamed(self, name: str) -> None:
        (self.folder / (name + UNNAMED)).unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        path = self.path(name)
        path.unlink(missing_ok=True)
        self.clear_unnamed(name)
        fsync_directory(path.parent)
        with contextlib.suppress(OSError):  # other files share the prefix
            os.rmdir(path.parent)


def from_settings() -> FileArchive | None:
    """The archive `file_store` writes, or None when file protection is off (or on S3, whose
    store is itself the durable copy: docs/data-safety.md)."""
    from django.conf import settings

    folder = settings.PROTECTED_FILES_ARCHIVE_DIR
    return FileArchive(Path(folder)) if folder else None
