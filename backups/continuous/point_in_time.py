"""Restoring the embedded data folder to a point in time, from the continuous archive.

Everything happens in a scratch folder (`DATA_DIR/postgres.restoring`) until it has worked: the
base backup is checked (pg_verifybackup) and copied there, the WAL it needs is linked into it
(checked against the sha256 recorded when it was archived), and PostgreSQL replays it up to the
target and is promoted (recovery.py). Only then is the current data folder moved aside (never
deleted) and the restored one put in its place. Any failure on the way leaves the current data
as it was.
"""

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from barman import xlog

from backups.continuous.archive import Archive, BaseBackup, History, stream_position
from backups.continuous.base_backup import verify
from backups.continuous.branches import history_files
from backups.continuous.offsite import OffSite
from backups.continuous.recovery import (
    RESTORE_WAL,
    Inspect,
    TargetNotReached,
    recover,
    write_recovery_settings,
)
from backups.errors import BackupError
from core.say import Say
from pgembedded import cluster
from pgembedded.roles import DataFolderServer


class NamedBase(Protocol):
    """A base backup as a restore reports it: local (`BaseBackup`) or off-site (`OffSiteBackup`)."""

    @property
    def name(self) -> str: ...


class RestoreSource[Base: NamedBase](Protocol):
    """Where a restore takes its base backup and WAL from, `Base` being its kind of base backup:
    the local archive (`LocalSource`) or the off-site store (`offsite_restore.OffSiteSource`)."""

    def describe(self) -> str:
        """Where it is, in words."""
        ...

    def choose(self, target: datetime | None) -> Base:
        """The base backup to replay from to reach `target` (None: its newest point)."""
        ...

    def latest(self) -> datetime | None:
        """The newest point its WAL reaches; None when it cannot tell."""
        ...

    def timeline(self, base: Base, target: datetime | None) -> int | str:
        """recovery_target_timeline: a timeline, or 'latest'."""
        ...

    def check(self, base: Base, say: Say) -> None:
        """Refuse (BackupError) a damaged base backup or WAL, before anything is changed."""
        ...

    def fill(self, scratch: Path, base: Base) -> str:
        """The base backup into `scratch`; the restore_command that gives PostgreSQL its WAL."""
        ...


@dataclass(frozen=True)
class Restored[Base: NamedBase]:
    base: Base  # the base backup restored
    moved_aside: Path | None
    seconds: float
    reached: str


def parse_target(text: str) -> datetime:
    """An ISO-8601 time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BackupError(
            f"{text!r} is not an ISO-8601 time: write e.g. 2026-01-25T10:14:00Z or "
            f"2026-01-25T10:14:00+01:00 (without an offset it is UTC). Nothing was changed."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def newest_base(archive: Archive) -> BaseBackup:
    backups = archive.base_backups()
    if not backups:
        raise no_base_backup(archive)
    return backups[-1]


def no_base_backup(archive: Archive) -> BackupError:
    """Why an archive without a base backup restores nothing, WAL or not."""
    newest = archive.newest_wal_time()
    if newest is None:
        return BackupError(
            f"No base backup in {archive.base_dir}: nothing to restore from (`serve` takes one "
            f"at its first start, `manage.py backup` takes one now). Nothing was changed."
        )
    return BackupError(
        f"The archive {archive.folder} holds WAL (written up to "
        f"{newest.isoformat(timespec='seconds')}) but no base backup to replay it onto, so "
        f"nothing in it can be restored (was the data lost before the first base backup "
        f"ended?). Keep the folder; a pg_dump file, if you have one, loads with `load FILE`. "
        f"Nothing was changed."
    )


def choose_base(
    archive: Archive, target: datetime | None, database: str | None = None
) -> BaseBackup:
    """The newest base backup that ended before `target` (None: the newest of all), of
    `database` (a system identifier) when given."""
    newest = newest_base(archive)
    histories = archive.histories()
    if database is not None:
        histories = [history for history in histories if history.system_identifier == database]
        if not histories:
            raise BackupError(
                f"The archive {archive.folder} holds no database {database} (`restore --list` "
                f"names those it holds). Nothing was changed."
            )
    elif target is None and newest.system_identifier != histories[0].system_identifier:
        raise BackupError(which_database(archive, histories))
    backups = sorted(
        (backup for history in histories for backup in history.base_backups),
        key=lambda backup: backup.ended,
    )
    if target is None:
        return backups[-1]
    earliest, latest = backups[0].ended, max(history.latest for history in histories)
    if not earliest <= target <= latest:
        raise BackupError(
            f"{target.isoformat()} is outside the recoverable window, {earliest.isoformat()} to "
            f"{latest.isoformat()} (`restore --list`). Nothing was changed."
        )
    return [backup for backup in backups if backup.ended <= target][-1]


def which_database(archive: Archive, histories: list[History]) -> str:
    """--latest when the newest base backup is of a database that came after another: it may be
    the empty one a start made after the data was lost, so the choice is the operator's. (A
    database restored after such a start is the first again, and --latest takes it.)"""
    lines = [
        f"The archive {archive.folder} holds {len(histories)} databases: a new one was created "
        f"and protected after the first (a lost data folder or volume, then a start before the "
        f"restore?), and --latest would restore the new one. Choose; nothing was changed:"
    ]
    for history in histories:
        identifier = history.system_identifier or "?"
        first = history.base_backups[0].ended.isoformat(timespec="seconds")
        lines.append(
            f"  database {identifier}, {first} to {history.latest.isoformat(timespec='seconds')}: "
            f"restore --latest --database {identifier}"
        )
    return "\n".join(lines)


class LocalSource:
    """The archive on this machine (BACKUP_DIR): base backups and the WAL pg_receivewal wrote.

    With `offsite`, the store's history files are seen too: another machine may have restored
    into it, and the new timeline must be above those as well."""

    def __init__(
        self,
        archive: Archive,
        database: str | None = None,
        offsite: OffSite | None = None,
        say: Say | None = None,
    ):
        self.archive, self.database = archive, database
        self.offsite, self.say = offsite, say or (lambda message: None)

    def describe(self) -> str:
        return str(self.archive.folder)

    def choose(self, target: datetime | None) -> BaseBackup:
        return choose_base(self.archive, target, self.database)

    def latest(self) -> datetime | None:
        return self.archive.newest_wal_time()

    def timeline(self, base: BaseBackup, target: datetime | None) -> int:
        """The newest of the base backup's chain, which is the branch's: 'latest' would follow
        the newest timeline recovery can see, another branch's once every history file is there.
        A chain holds more than one when the server it protects failed over (a cluster's standby
        promoted): pg_receivewal followed the new primary's timeline into the same chain."""
        names = [
            path.name.removesuffix(".partial")
            for path in self.archive.wal_dir(base.chain).iterdir()
        ]
        followed = [xlog.decode_segment_name(name)[0] for name in names if xlog.is_wal_file(name)]
        return max([base.timeline, *followed])

    def check(self, base: BaseBackup, say: Say) -> None:
        say(f"Checking base backup {base.name} (pg_verifybackup)")
        try:
            verify(base.path)
        except BackupError as error:
            raise BackupError(
                f"The base backup {base.path} is damaged: {error}. Nothing was changed."
            ) from None
        self.archive.check_segments(base.chain, base.start_wal)

    def fill(self, scratch: Path, base: BaseBackup) -> str:
        """The base backup and its WAL into `scratch`; the restore_command that reads them."""
        shutil.copytree(base.path, scratch, symlinks=True)
        (scratch / "backup_manifest").unlink(missing_ok=True)
        wal = scratch / RESTORE_WAL
        wal.mkdir(mode=0o700)
        # Every history file, of every branch: PostgreSQL names the restored timeline one above
        # the newest it can see, and one it cannot see would be used twice (the off-site copy
        # then refuses the second's WAL, which would overwrite the first's).
        for path in history_files(self.archive, chosen=base.chain):
            shutil.copyfile(path, wal / path.name)
        if self.offsite is not None:
            self._fetch_offsite_histories(self.offsite, wal)
        first = stream_position(base.start_wal)
        for path in sorted(self.archive.wal_dir(base.chain).iterdir()):
            name = path.name.removesuffix(".partial")
            if not xlog.is_wal_file(name) or stream_position(name) < first:
                continue
            if path.name.endswith(".partial") and (wal / name).exists():
                continue
            shutil.copyfile(path, wal / name)
        # Run by PostgreSQL in the data folder: a plain copy from inside it.
        return f"cp {RESTORE_WAL}/%f %p"

    def _fetch_offsite_histories(self, offsite: OffSite, wal: Path) -> None:
        """The store's history files above the newest here, until the first it lacks (the
        timelines in use are consecutive: each restore takes the next)."""
        timelines = (xlog.decode_segment_name(path.name)[0] for path in wal.glob("*.history"))
        timeline = max(timelines, default=1) + 1
        try:
            while offsite.fetch_history(xlog.encode_history_file_name(timeline), wal):
                timeline += 1
        except BackupError as error:
            self.say(
                f"WARNING: could not read the history files of {offsite.describe()} "
                f"({error}): if another machine restored into it, the new timeline may be one it "
                f"holds, and `status` will say the off-site copy stopped."
            )


def restore_to[Base: NamedBase](
    *,
    server: DataFolderServer,
    source: RestoreSource[Base],
    target: datetime | None,
    force: bool,
    say: Say,
    inspect: Inspect | None = None,
) -> Restored[Base]:
    """Replace `server`'s data folder with the source's state at `target` (None: the newest).

    `inspect(server)`, when given, runs once the recovered server is up in the scratch folder,
    before anything is replaced: raising there leaves everything as it was (the files the
    restored rows name are checked so, backups/continuous/files.py)."""
    started = time.monotonic()
    with server.start_lock():
        busy = server.in_use()
        if busy:
            raise BackupError(
                f"{busy}: stop `serve` and every other client first (restore replaces the data "
                f"folder). Nothing was changed."
            )
        base = source.choose(target)
        has_data = server.pgdata.exists() and any(server.pgdata.iterdir())
        if has_data and not force:
            raise BackupError(
                f"{server.pgdata} already holds data. Nothing was changed. To replace it, run "
                f"again with --force (it is moved aside, not deleted)."
            )
        source.check(base, say)
        scratch = server.data_dir / "postgres.restoring"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            say(f"Replaying the WAL up to {target.isoformat() if target else 'its end'}")
            try:
                reached = replay(server, source, base, scratch, target, inspect)
            except TargetNotReached:
                latest = source.latest()
                if target is None or latest is None or target > latest:
                    raise
                # No commit after `target` anywhere in the archive, which was written up to
                # `latest`: its end is the state at `target`.
                shutil.rmtree(scratch, ignore_errors=True)
                reached = replay(server, source, base, scratch, None, inspect)
        except BaseException:
            cluster.stop(scratch)
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        moved = None
        if server.pgdata.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            moved = server.data_dir / f"postgres.before-restore-{stamp}"
            server.pgdata.rename(moved)
        scratch.rename(server.pgdata)
    return Restored(
        base=base, moved_aside=moved, seconds=time.monotonic() - started, reached=reached
    )


def replay[Base: NamedBase](
    server: DataFolderServer,
    source: RestoreSource[Base],
    base: Base,
    scratch: Path,
    target: datetime | None,
    inspect: Inspect | None = None,
) -> str:
    restore_command = source.fill(scratch, base)
    scratch.chmod(0o700)
    write_recovery_settings(scratch, restore_command, target, source.timeline(base, target))
    return recover(server, scratch, inspect)
