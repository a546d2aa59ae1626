"""Small file-system facts and words for them, used wherever data folders are handled."""

import fcntl
import os
import shutil
from pathlib import Path
from typing import Literal, TextIO, overload


def lock(file: TextIO, *, shared: bool = False, wait: bool = True) -> bool:
    """flock(2) the open `file`: False when `wait` is False and another process holds it.

    The lock lasts while the file is open (in forked children too), and the kernel drops it when
    the process dies: a crash leaves no stale lock. On a file already locked, it converts the lock.
    """
    try:
        fcntl.flock(
            file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        )
    except BlockingIOError:
        return False
    return True


@overload
def locked_file(path: Path, *, shared: bool = False, wait: Literal[True] = True) -> TextIO: ...
@overload
def locked_file(path: Path, *, shared: bool = False, wait: bool) -> TextIO | None: ...
def locked_file(path: Path, *, shared: bool = False, wait: bool = True) -> TextIO | None:
    """`path` (made if missing), open and locked; None when `wait` is False and it is held.

    Close it, or leave a `with` block on it, to release the lock.
    """
    file = open(path, "a")  # noqa: SIM115  (the caller holds it)
    try:
        if lock(file, shared=shared, wait=wait):
            return file
    except BaseException:
        file.close()
        raise
    file.close()
    return None


def fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folder_size(path: Path) -> int:
    """Bytes in the files under `path` (or of `path` itself)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for item in path.rglob("*") if path.is_dir() else []:
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:  # removed meanwhile (PostgreSQL's temporary files)
            continue
    return total


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def nearest_existing(path: Path) -> Path | None:
    """`path`, or its nearest parent that exists: where a folder not made yet will be."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def usage_per_file_system(places: dict[str, Path]) -> dict[str, shutil._ntuple_diskusage]:
    """Disk usage where each place is (or will be), once per file system: a place on the same
    file system as one named before it is left out."""
    usages, devices = {}, set()
    for name, place in places.items():
        existing = nearest_existing(place)
        if existing is None or existing.stat().st_dev in devices:
            continue
        devices.add(existing.stat().st_dev)
        usages[name] = shutil.disk_usage(existing)
    return usages
