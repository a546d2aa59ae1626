"""Writes: storing a file (durable, archived, then acknowledged), opening one, the orphan sweep."""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.core.files import File

from core.files import locked_file

from . import archive as file_archive
from .durable import FULL, make_folder, temporary_file, write_stream
from .errors import StorageFull
from .names import name_for
from .selectors import file_names_in_use
from .storage import protected_storage

LOCK = ".lock"


@dataclass(frozen=True)
class StoredFile:
    name: str
    sha256: str
    size: int


def file_store(*, stream: BinaryIO, max_bytes: int) -> StoredFile:
    """Store the bytes `stream.read(n)` gives, streamed and hashed on the way, under their
    sha256; once this returns the file and its archive copy are on disk (fsynced), and the row
    naming `StoredFile.name` may commit. FileTooLarge past `max_bytes`, StorageFull when a disk
    is full: nothing is left behind either way."""
    storage = protected_storage()
    staging: Path = storage.staging_dir
    try:
        fd, path = temporary_file(staging)
    except OSError as error:
        if error.errno in FULL:
            raise StorageFull("the upload folder") from None
        raise
    sha256, size = write_stream(
        stream=stream, fd=fd, path=path, max_bytes=max_bytes, where="the upload folder"
    )
    name = name_for(sha256)
    archive = file_archive.from_settings()
    try:
        # The archive copy first: a file in the store that is not archived yet is never named.
        if archive is not None:
            archive.put(source=path, name=name)
        # Shared: the orphan sweep (exclusive) never removes a file this is placing or reusing.
        with locked_file(staging / LOCK, shared=True):
            storage.place(path=path, name=name)
    except OSError as error:
        path.unlink(missing_ok=True)
        if error.errno in FULL:
            raise StorageFull("the file store or its archive") from None
        raise
    return StoredFile(name=name, sha256=sha256, size=size)


def file_open(name: str) -> File:
    """A stored file, open for reading (for streaming it when no front door sends it)."""
    return protected_storage().open(name, "rb")


def file_remove_orphans(*, grace_seconds: int, now: float | None = None) -> list[str]:
    """Remove from the store the files no row names that are older than `grace_seconds` (an
    upload whose row never committed), and upload leftovers as old; the names removed. The
    archive copies stay: the backup retention decides when those go."""
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    storage = protected_storage()
    staging: Path = storage.staging_dir
    removed: list[str] = []
    if staging.is_dir():
        for leftover in staging.glob("upload-*.partial"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
            except FileNotFoundError:
                continue
    candidates = [(name, mtime) for name, mtime in storage.stored_names() if mtime < cutoff]
    if not candidates:
        return removed
    in_use = file_names_in_use()
    make_folder(staging)
    with locked_file(staging / LOCK):
        # Under the lock, as stored_names says now: an upload of the same bytes since the list
        # above renewed the time, and its row may not have committed yet.
        fresh = dict(storage.stored_names())
        for name, _ in candidates:
            if name in in_use or name not in fresh or fresh[name] >= cutoff:
                continue
            storage.remove(name)
            removed.append(name)
    return removed
