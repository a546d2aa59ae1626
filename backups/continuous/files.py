"""Protected files in the continuous archive (`BACKUP_DIR/files`, written by filestore's
`file_store` before an upload is acknowledged): restored with the rows that name them, checked
by the restore drill, copied off-site by `protect`, and pruned once no restorable point names
them.

A restore reads which files the recovered rows name while the recovered server still runs in its
scratch folder, and finds each one, verified by its sha256, before the data folder is touched: in
the store as it is, in the local archive, or off-site. Once the data folder is in place, the
store is made to hold exactly those files.
"""

import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from django.db import close_old_connections
from psycopg import sql

from backups.continuous.archive import Archive
from backups.continuous.offsite import OffSite
from backups.errors import BackupError
from filestore.archive import FileArchive
from filestore.durable import copy_file, file_sha256, make_folder
from filestore.names import is_name, sha256_of_name
from filestore.selectors import file_names_in_use, protected_file_fields
from filestore.storage import ProtectedFileSystemStorage, protected_storage
from pgembedded.roles import DataFolderServer

logger = logging.getLogger("backups")
SHIPPED = "SHIPPED"  # in the file archive: the names copied off-site, one a line
RESTORING = "restoring"  # in the store's upload folder: files fetched from off-site for a restore


def file_archive(backup_dir: Path) -> FileArchive:
    return FileArchive(backup_dir / "files")


def names_in(connection) -> set[str]:
    """The stored files the rows of `connection`'s database name (any version of the schema:
    a table or column not made yet at that point names none)."""
    names: set[str] = set()
    for model, file_field in protected_file_fields():
        table, column = model._meta.db_table, file_field.column or file_field.attname
        exists = connection.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND column_name = %s",
            [table, column],
        ).fetchone()
        if not exists:
            continue
        rows = connection.execute(
            sql.SQL("SELECT DISTINCT {column} FROM {table} WHERE {column} <> ''").format(
                column=sql.Identifier(column), table=sql.Identifier(table)
            )
        ).fetchall()
        names.update(value for (value,) in rows if value)
    return names


# -- the off-site copy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OffSiteFiles:
    """Files beside barman-cloud's folders: `<BACKUP_URL>/<server name>/files/<name>`."""

    offsite: OffSite

    @cached_property
    def _client(self):
        """One client, with short timeouts and one retry: the files' thread waits on it, and the
        files wait on the local disk until the next try."""
        import boto3
        from botocore.config import Config

        environment = self.offsite.environment()
        return boto3.client(
            "s3",
            endpoint_url=self.offsite.endpoint or None,
            region_name=environment.get("AWS_DEFAULT_REGION"),
            aws_access_key_id=environment.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=environment.get("AWS_SECRET_ACCESS_KEY"),
            config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2}),
        )

    def _where(self, name: str) -> tuple[str, str]:
        parts = urlsplit(self.offsite.url)
        prefix = "/".join(
            part for part in (parts.path.strip("/"), self.offsite.server_name, "files") if part
        )
        return parts.netloc, f"{prefix}/{name}"

    def describe(self) -> str:
        return f"{self.offsite.url}/{self.offsite.server_name}/files"

    def upload(self, path: Path, name: str) -> None:
        bucket, key = self._where(name)
        try:
            self._client.upload_file(str(path), bucket, key)
        except Exception as error:  # boto3's and botocore's errors share no base worth naming
            raise BackupError(f"copying {name} to {self.describe()} failed: {error}") from None

    def download(self, name: str, destination: Path) -> bool:
        """`name` into `destination`; False when the store has no such file."""
        from botocore.exceptions import ClientError

        bucket, key = self._where(name)
        make_folder(destination.parent)
        try:
            self._client.download_file(bucket, key, str(destination))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise BackupError(f"reading {name} from {self.describe()} failed: {error}") from None
        except Exception as error:
            raise BackupError(f"reading {name} from {self.describe()} failed: {error}") from None
        return True


def offsite_files(offsite: OffSite | None) -> OffSiteFiles | None:
    return OffSiteFiles(offsite) if offsite is not None else None


# -- restoring -------------------------------------------------------------------------------------


def in_store(name: str) -> bool:
    """Whether the store holds `name` intact (in a bucket: holds it; a bucket acknowledged it
    whole, and reading it all back here would cost more than it tells)."""
    storage = protected_storage()
    if isinstance(storage, ProtectedFileSystemStorage):
        current = storage.local_path(name)
        return current.is_file() and file_sha256(current) == sha256_of_name(name)
    return storage.exists(name)


@dataclass
class FilesRestore:
    """Finds every file the restored rows name, then puts exactly those in the store."""

    archive: FileArchive
    offsite: OffSiteFiles | None = None
    # False for the drill: each file must come back from the archive, whatever the store holds.
    use_store: bool = True
    found: dict[str, Path | None] = field(default_factory=dict)  # None: already in the store
    checked: bool = False

    def check_server(self, server: DataFolderServer) -> None:
        """For recovery.recover: the recovered server runs, the data folder is untouched."""
        with server.connect(dbname=server.connection_settings()["NAME"]) as connection:
            self.check_names(names_in(connection))

    def check_names(self, names: Iterable[str]) -> None:
        self.discard()  # what an earlier, failed restore fetched
        self.found, missing = {}, []
        for name in sorted(names):
            where = self._find(name)
            if where is False:
                missing.append(name)
            else:
                self.found[name] = where
        self.checked = True
        if missing:
            self.discard()
            sources = " or ".join(
                [str(self.archive.folder)] + ([self.offsite.describe()] if self.offsite else [])
            )
            raise BackupError(
                f"{len(missing)} of the {len(self.found) + len(missing)} files the restored rows "
                f"name are missing or damaged (their sha256 does not match) in {sources}: "
                f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}. Nothing was "
                f"changed."
            )

    def _find(self, name: str) -> Path | Literal[False] | None:
        """Where an intact copy is: None (the store has it), a path, or False (nowhere)."""
        if not is_name(name):
            return False  # a row naming something no store can hold: reported as missing
        if self.use_store and in_store(name):
            return None
        if self.archive.has(name) and self.archive.intact(name):
            return self.archive.path(name)
        if self.offsite is not None:
            fetched = self._restoring_dir() / sha256_of_name(name)
            if self.offsite.download(name, fetched):
                if file_sha256(fetched) == sha256_of_name(name):
                    return fetched
                fetched.unlink()
        return False

    def _restoring_dir(self) -> Path:
        return Path(protected_storage().staging_dir) / RESTORING

    def put_in_place(self) -> tuple[int, int]:
        """The store holds exactly the files found: (copied in, removed)."""
        if not self.checked:
            raise BackupError("The restored rows' files were not checked.")
        storage = protected_storage()
        copied = removed = 0
        for name, source in self.found.items():
            if source is None:
                continue
            if isinstance(storage, ProtectedFileSystemStorage):
                copy_file(
                    source=source,
                    destination=storage.local_path(name),
                    mode=storage.file_permissions_mode or 0o600,
                )
            else:
                with open(source, "rb") as file:
                    storage.save(name, file)
            copied += 1
        if isinstance(storage, ProtectedFileSystemStorage):
            for name, _ in storage.stored_names():
                if name not in self.found:
                    storage.remove(name)
                    removed += 1
        # (In a bucket, the files no row names are left to the orphan sweep, which keeps them
        # for the retention: there the bucket is the archive.)
        self.discard()
        if isinstance(storage, ProtectedFileSystemStorage):
            give_to_owner(Path(storage.location))
        return copied, removed

    def discard(self) -> None:
        shutil.rmtree(self._restoring_dir(), ignore_errors=True)


def give_to_owner(root: Path) -> None:
    """Run as root (compose's `restore` service), make what the restore wrote in the store its
    owner's again (the app user's), or the app could neither read nor sweep it."""
    if os.geteuid() != 0 or not root.is_dir():
        return
    owner = root.stat()
    for path in [root, *root.rglob("*")]:
        status = path.lstat()
        if (status.st_uid, status.st_gid) != (owner.st_uid, owner.st_gid):
            os.lchown(path, owner.st_uid, owner.st_gid)


# -- protection: off-site copies and retention ---------------------------------------------------


def offsite_waiting(archive: FileArchive) -> int | None:
    """Archived files not copied off-site yet; None when nothing is copied off-site."""
    ledger = archive.folder / SHIPPED
    if not ledger.exists():
        return None
    shipped = set(ledger.read_text().split())
    return sum(name not in shipped for name in archive.names())


def ship_pending(archive: FileArchive, offsite: OffSiteFiles) -> int:
    """Copy the archived files not copied yet off-site, oldest name first, stopping at the first
    failure (raised); how many went. The ledger is written after each upload: a crash between
    the two sends that file again, which is harmless (same name, same bytes)."""
    make_folder(archive.folder)
    ledger = archive.folder / SHIPPED
    ledger.touch()
    done = set(ledger.read_text().split())
    count = 0
    for name in archive.names():
        if name in done:
            continue
        offsite.upload(archive.path(name), name)
        with open(ledger, "a") as file:
            file.write(name + "\n")
        count += 1
    return count


def archive_from_store(archive: FileArchive) -> int:
    """Archive what the store holds and the archive lacks: files stored while the protection was
    off, or by an app that writes no archive copy itself (the archive on another volume)."""
    storage = protected_storage()
    if not isinstance(storage, ProtectedFileSystemStorage):
        return 0
    count = 0
    for name, _ in storage.stored_names():
        if archive.has(name):
            continue
        path = storage.local_path(name)
        try:
            if file_sha256(path) == sha256_of_name(name):
                archive.put(source=path, name=name)
                count += 1
        except FileNotFoundError:
            continue  # swept meanwhile: no row named it
    return count


def mark_and_prune(
    archive: FileArchive, *, in_use: set[str], oldest_point: datetime | None
) -> list[str]:
    """Record since when each archived file is named by no row, and delete those that were
    already unnamed before `oldest_point`, the oldest point a restore can reach (no restorable
    point names them). Without a restorable point, nothing is deleted."""
    now = datetime.now(UTC)
    pruned = []
    for name in list(archive.names()):
        if name in in_use:
            archive.clear_unnamed(name)
            continue
        archive.mark_unnamed(name, now)
        since = archive.unnamed_since(name)
        if oldest_point is not None and since is not None and since < oldest_point:
            archive.remove(name)
            pruned.append(name)
    return pruned


def drill_check(archive: FileArchive, offsite: OffSiteFiles | None):
    """For the restore drill: each file the restored rows name is in the archive (or off-site)
    and intact; how many were checked."""

    def check(connection) -> int:
        files = FilesRestore(archive=archive, offsite=offsite, use_store=False)
        try:
            files.check_names(names_in(connection))
        finally:
            files.discard()
        return len(files.found)

    return check


class FileProtection:
    """`protect`'s part for files, in a thread of its own, every second: archive what the store
    holds and the archive lacks (every few seconds), copy new archive files off-site, and every
    PRUNE_SECONDS record which files no row names and prune those no restorable point names."""

    CHECK_SECONDS = 1.0
    ARCHIVE_SECONDS = 10.0
    PRUNE_SECONDS = 60.0
    RETRY_SECONDS = 5.0  # after a failed off-site copy (the store down): the WAL's turn first

    def __init__(self, *, archive: FileArchive, offsite: OffSiteFiles | None, oldest_point):
        self.archive, self.offsite, self.oldest_point = archive, offsite, oldest_point
        self._next_archive = self._next_prune = self._next_offsite = 0.0

    def run(self, stopping, record_error) -> None:
        while not stopping.wait(self.CHECK_SECONDS):
            try:
                self.tick(record_error)
            except Exception as error:  # never let the bookkeeping end the protection
                logger.warning("File protection bookkeeping failed: %s", error)
            finally:
                close_old_connections()

    def tick(self, record_error) -> None:
        if time.time() >= self._next_archive:
            self._next_archive = time.time() + self.ARCHIVE_SECONDS
            archive_from_store(self.archive)
        if self.offsite is not None and time.time() >= self._next_offsite:
            try:
                ship_pending(self.archive, self.offsite)
            except BackupError as error:
                self._next_offsite = time.time() + self.RETRY_SECONDS
                record_error(f"Off-site file copy failed (the files wait locally): {error}")
        if time.time() >= self._next_prune:
            self._next_prune = time.time() + self.PRUNE_SECONDS
            mark_and_prune(
                self.archive, in_use=file_names_in_use(), oldest_point=self.oldest_point()
            )


def file_protection(archive: Archive, offsite: OffSite | None) -> FileProtection:
    """The files' part of protecting `archive` (its `files/` folder)."""

    def oldest_point() -> datetime | None:
        window = archive.window()
        return window[0] if window else None

    return FileProtection(
        archive=file_archive(archive.folder),
        offsite=offsite_files(offsite),
        oldest_point=oldest_point,
    )
