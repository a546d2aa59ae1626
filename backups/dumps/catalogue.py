"""The backups folder: what the files are called, which are there, which go, their checksums.

File names are `<database>-<UTC time>.dump` (`keepnotes-20260125-031500Z.dump`), each with its
sha256 beside it in `<name>.sha256`. Every other file in the folder is left alone.
"""

import hashlib
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backups.errors import BackupError
from core import env

STAMP_FORMAT = "%Y%m%d-%H%M%SZ"
BACKUP_NAME = re.compile(r"^(?P<database>.+)-(?P<stamp>\d{8}-\d{6}Z)\.dump$")


@dataclass(frozen=True)
class Backup:
    path: Path
    database: str
    taken: datetime
    size: int

    @property
    def checksum_path(self) -> Path:
        return checksum_path(self.path)


def default_keep() -> int | None:
    """`BACKUP_KEEP`; unset or 0: keep every backup."""
    keep = env.get_int("BACKUP_KEEP", 0)
    return keep if keep > 0 else None


def file_safe(database: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", database) or "database"


def new_name(folder: Path, database: str) -> str:
    """`<database>-<UTC second>.dump`, waiting for the next second if that one is taken."""
    while True:
        now = datetime.now(UTC)
        name = f"{database}-{now.strftime(STAMP_FORMAT)}.dump"
        if not (folder / name).exists() and not (folder / f"{name}.partial").exists():
            return name
        time.sleep(1.01 - now.microsecond / 1_000_000)


def parse_backup(path: Path) -> Backup | None:
    match = BACKUP_NAME.match(path.name)
    if not match or not path.is_file():
        return None
    taken = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    return Backup(path=path, database=match["database"], taken=taken, size=path.stat().st_size)


def list_backups(folder: Path, database: str | None = None) -> list[Backup]:
    """The backups in `folder`, oldest first; other files are ignored."""
    if not folder.is_dir():
        return []
    found = [backup for path in folder.iterdir() if (backup := parse_backup(path))]
    if database is not None:
        found = [backup for backup in found if backup.database == file_safe(database)]
    return sorted(found, key=lambda backup: (backup.taken, backup.path.name))


def latest_backup(folder: Path, database: str | None = None) -> Backup | None:
    backups = list_backups(folder, database)
    return backups[-1] if backups else None


def prune(folder: Path, *, keep: int, database: str) -> list[Path]:
    """Delete all but the newest `keep` backups of `database` (and their checksums)."""
    if keep < 1:
        raise BackupError("--keep must be at least 1: the newest backup is never deleted.")
    doomed = list_backups(folder, database)[:-keep]
    for backup in doomed:
        backup.path.unlink()
        backup.checksum_path.unlink(missing_ok=True)
    return [backup.path for backup in doomed]


# -- checksums -------------------------------------------------------------------------------


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sha256_of(path: Path, *, fsync: bool = False) -> str:
    """The file's sha256; with `fsync`, its bytes are on disk too once this returns."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
        if fsync:
            os.fsync(file.fileno())
    return digest.hexdigest()


def write_checksum(dump_path: Path, digest: str) -> None:
    """`<digest>  <name>` in `<name>.sha256`, whole (fsynced, then renamed) or not at all."""
    target = checksum_path(dump_path)
    draft = target.with_name(target.name + ".partial")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"{digest}  {dump_path.name}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(draft, target)


def recorded_checksum(path: Path) -> str | None:
    """The sha256 written beside `path` when it was made; None when there is no such file."""
    try:
        text = checksum_path(path).read_text()
    except FileNotFoundError:
        return None
    return text.split()[0].lower() if text.split() else ""
