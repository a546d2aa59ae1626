"""Small file-system facts and words for them, used wherever data folders are handled."""

import os
from pathlib import Path


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
