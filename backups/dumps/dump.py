"""Writing a backup: pg_dump into the backups folder, complete and fsynced, or nothing.

pg_dump reads one snapshot, so the file is consistent while the app keeps writing. It goes to
`NAME.dump.partial`, which is fsynced, checksummed and renamed only once complete: a crash or a
full disk never leaves a truncated file that looks like a backup.
"""

import os
from datetime import UTC, datetime
from pathlib import Path

from backups.dumps.catalogue import (
    BACKUP_NAME,
    STAMP_FORMAT,
    Backup,
    checksum_path,
    file_safe,
    new_name,
    sha256_of,
    write_checksum,
)
from backups.errors import BackupError
from backups.progress import PROGRESS_INTERVAL, run_with_progress
from backups.tools import check_tool_version, child_environment, tool
from core.files import fsync_directory
from core.say import Say

# A migration or a long transaction holding a lock makes pg_dump fail after this, not hang.
LOCK_WAIT_TIMEOUT = "120s"


def dump(
    *,
    settings_dict: dict,
    folder: Path,
    server_version: int | None = None,
    say: Say | None = None,
    interval: float = PROGRESS_INTERVAL,
) -> Backup:
    """pg_dump the database into a new file in `folder`; complete and fsynced, or nothing."""
    pg_dump = tool("pg_dump")
    if server_version:
        check_tool_version(pg_dump, server_version)
    database = file_safe(settings_dict.get("NAME") or "database")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise BackupError(
            f"Cannot create the backups folder {folder} ({error.strerror}): set BACKUP_DIR or "
            f"pass --dir with a folder you can write to."
        ) from None
    final = folder / new_name(folder, database)
    partial = final.with_name(final.name + ".partial")
    command = [
        str(pg_dump),
        "--format=custom",
        "--no-password",
        "--verbose",
        f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}",
        f"--file={partial}",
    ]
    try:
        run_with_progress(
            command,
            environ=child_environment(settings_dict),
            what="pg_dump",
            say=say,
            interval=interval,
            describe=lambda step: f"{_megabytes(_size(partial))} written ({step})",
        )
        # The file holds password hashes and token hashes: the owner's eyes only.
        os.chmod(partial, 0o600)
        write_checksum(final, sha256_of(partial, fsync=True))
        os.replace(partial, final)
        fsync_directory(folder)
    except BaseException:  # Ctrl-C and SIGTERM too: never leave a partial file behind
        partial.unlink(missing_ok=True)
        if not final.exists():
            checksum_path(final).unlink(missing_ok=True)
        raise
    return Backup(path=final, database=database, taken=_stamp_of(final), size=final.stat().st_size)


def _stamp_of(path: Path) -> datetime:
    match = BACKUP_NAME.match(path.name)
    assert match is not None, "named by new_name"
    return datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
