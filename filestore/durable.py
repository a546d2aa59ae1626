"""Writing a file so that it survives a crash the moment the call returns: data, then its name.

A file is written under a temporary name, fsynced, renamed into place, and its folder fsynced
(and the folder's parent, when the folder was just made): after a power cut either the whole
file is there under its name, or nothing is.
"""

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from core.files import fsync_directory

from .errors import FileTooLarge, StorageFull

CHUNK = 1 << 20
# What a full disk or a full quota looks like: the caller's 507, not a 500.
FULL = {errno.ENOSPC, errno.EDQUOT}


def make_folder(folder: Path) -> None:
    """`folder` and its missing parents, each fsynced into its parent."""
    if folder.is_dir():
        return
    make_folder(folder.parent)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return
    fsync_directory(folder.parent)


def temporary_file(folder: Path) -> tuple[int, Path]:
    make_folder(folder)
    fd, path = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=".partial")
    return fd, Path(path)


def write_stream(
    *, stream: BinaryIO, fd: int, path: Path, max_bytes: int, where: str
) -> tuple[str, int]:
    """Copy `stream` into the open `fd` in chunks while hashing it, then fsync: (sha256, size).
    On any failure, the file at `path` is removed and the error raised."""
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(max_bytes)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException as error:
        path.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in FULL:
            raise StorageFull(where) from None
        raise
    return digest.hexdigest(), size


def copy_file(*, source: Path, destination: Path, mode: int = 0o600) -> None:
    """`source` to `destination` (replaced if there), durably."""
    make_folder(destination.parent)
    fd, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".copy-", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as file:
            shutil.copyfileobj(file, out, CHUNK)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(destination.parent)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
