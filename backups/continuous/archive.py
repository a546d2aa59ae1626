"""The continuous archive on disk: base backups, the WAL after them, and what they can restore.

Layout, inside the backups folder (`BACKUP_DIR`, else `DATA_DIR/backups`):

    base/<UTC stamp>/        a pg_basebackup (plain format, with its backup_manifest)
    base/<UTC stamp>.json    when it started and ended, its first WAL segment, timeline, chain
    wal/<chain>/             one unbroken WAL stream, written by pg_receivewal (the segment
                             being written is `<name>.partial`)
    wal/<chain>/SHA256SUMS   the sha256 of every complete segment, recorded once complete
    last_error.txt           the receiver's last error (removed once it streams again)

A chain starts whenever the replication slot is made anew (the first `serve`, or the first after
a restore, whose server is on a new timeline): pg_receivewal resumes from the newest segment in
its folder, which must be of the same history. Every chain starts with a base backup.

The recoverable window runs from the end of the oldest base backup to the newest WAL written.
"""

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from barman import xlog

from backups.errors import BackupError
from backups.tools import tool

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
LEDGER = "SHA256SUMS"
# pg_basebackup's manifest names the database it copied near its start (PostgreSQL 17 and on).
SYSTEM_IDENTIFIER = re.compile(rb'"System-Identifier": (\d+)')


@dataclass(frozen=True)
class BaseBackup:
    path: Path
    started: datetime
    ended: datetime
    start_wal: str
    timeline: int
    chain: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def system_identifier(self) -> str | None:
        """Which database this is a copy of: initdb gives each its own, a restore keeps it."""
        try:
            with open(self.path / "backup_manifest", "rb") as manifest:
                found = SYSTEM_IDENTIFIER.search(manifest.read(512))
        except OSError:
            return None
        return found.group(1).decode() if found else None


@dataclass(frozen=True)
class History:
    """One database's part of the archive: its base backups, and the WAL of their chains."""

    system_identifier: str | None
    base_backups: list[BaseBackup]
    latest: datetime  # the newest point it can be restored to


@dataclass(frozen=True)
class Archive:
    folder: Path

    @property
    def base_dir(self) -> Path:
        return self.folder / "base"

    @property
    def wal_root(self) -> Path:
        return self.folder / "wal"

    @property
    def error_file(self) -> Path:
        return self.folder / "last_error.txt"

    def make_folders(self) -> None:
        for folder in (self.folder, self.base_dir, self.wal_root):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def chains(self) -> list[str]:
        if not self.wal_root.is_dir():
            return []
        return sorted(path.name for path in self.wal_root.iterdir() if path.is_dir())

    def current_chain(self) -> str | None:
        chains = self.chains()
        return chains[-1] if chains else None

    def new_chain(self) -> str:
        self.make_folders()
        chain = new_stamp()
        (self.wal_root / chain).mkdir(mode=0o700)
        return chain

    def wal_dir(self, chain: str) -> Path:
        return self.wal_root / chain

    # -- base backups ----------------------------------------------------------------------------

    def base_backups(self) -> list[BaseBackup]:
        """Complete base backups, oldest first (a folder without its .json is unfinished)."""
        if not self.base_dir.is_dir():
            return []
        found = []
        for info in self.base_dir.glob("*.json"):
            path = info.with_suffix("")
            try:
                data = json.loads(info.read_text())
            except (OSError, ValueError):
                continue
            if path.is_dir():
                found.append(
                    BaseBackup(
                        path=path,
                        started=datetime.fromisoformat(data["started"]),
                        ended=datetime.fromisoformat(data["ended"]),
                        start_wal=data["start_wal"],
                        timeline=int(data["timeline"]),
                        chain=data["chain"],
                    )
                )
        return sorted(found, key=lambda backup: backup.ended)

    def newest_base_backup(self, chain: str) -> BaseBackup | None:
        """The newest complete base backup that starts `chain`'s history, if any."""
        return next(
            (backup for backup in reversed(self.base_backups()) if backup.chain == chain), None
        )

    def record_base_backup(
        self, path: Path, *, chain: str, started: datetime, ended: datetime
    ) -> BaseBackup:
        """Write the .json that makes `path` a complete base backup; read from its backup_label."""
        label = (path / "backup_label").read_text()
        wal = re.search(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", label)
        timeline = re.search(r"START TIMELINE: (\d+)", label)
        if not wal or not timeline:
            raise BackupError(f"{path}/backup_label does not name its first WAL segment.")
        start_wal, timeline_id = wal.group(1), int(timeline.group(1))
        data = {
            "started": started.isoformat(),
            "ended": ended.isoformat(),
            "start_wal": start_wal,
            "timeline": timeline_id,
            "chain": chain,
        }
        info = path.with_name(path.name + ".json")
        draft = info.with_name(info.name + ".partial")
        draft.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(draft, info)
        return BaseBackup(path, started, ended, start_wal, timeline_id, chain)

    # -- WAL ---------------------------------------------------------------------------------------

    def segments(self, chain: str) -> list[Path]:
        """Complete WAL segments of `chain`, in order."""
        folder = self.wal_dir(chain)
        if not folder.is_dir():
            return []
        return sorted(path for path in folder.iterdir() if xlog.is_wal_file(path.name))

    def newest_wal_time(self, chains: list[str] | None = None) -> datetime | None:
        """When the receiver last wrote WAL (into `chains`, or any): the latest restorable point."""
        times = [
            path.stat().st_mtime
            for chain in (self.chains() if chains is None else chains)
            if self.wal_dir(chain).is_dir()
            for path in self.wal_dir(chain).iterdir()
            if xlog.is_wal_file(path.name) or xlog.is_partial_file(path.name)
        ]
        return datetime.fromtimestamp(max(times), UTC) if times else None

    def histories(self) -> list[History]:
        """The databases the archive holds, in the order they first came. One, unless another
        database (a new initdb: a lost data folder or volume, then a start) was protected here."""
        groups: dict[str | None, list[BaseBackup]] = {}
        for backup in self.base_backups():
            groups.setdefault(backup.system_identifier, []).append(backup)
        histories = []
        for identifier, backups in groups.items():
            wal = self.newest_wal_time(sorted({backup.chain for backup in backups}))
            latest = max(wal, backups[-1].ended) if wal else backups[-1].ended
            histories.append(History(identifier, backups, latest))
        return histories

    def window(self) -> tuple[datetime, datetime] | None:
        """(earliest, latest) recoverable points; None without a base backup."""
        backups = self.base_backups()
        newest = self.newest_wal_time()
        if not backups:
            return None
        earliest = backups[0].ended
        return earliest, max(newest or earliest, backups[-1].ended)

    def recorded_checksums(self, chain: str) -> dict[str, str]:
        try:
            lines = (self.wal_dir(chain) / LEDGER).read_text().splitlines()
        except FileNotFoundError:
            return {}
        return {name: digest for digest, _, name in (line.partition("  ") for line in lines)}

    def record_checksums(self, chain: str) -> int:
        """Record the sha256 of complete segments not recorded yet; how many were added."""
        known = self.recorded_checksums(chain)
        new = [path for path in self.segments(chain) if path.name not in known]
        if not new:
            return 0
        with open(self.wal_dir(chain) / LEDGER, "a") as ledger:
            for path in new:
                ledger.write(f"{sha256_of(path)}  {path.name}\n")
            ledger.flush()
            os.fsync(ledger.fileno())
        return len(new)

    def check_segments(self, chain: str, first: str) -> None:
        """Refuse when a recorded segment from `first` on no longer matches its sha256."""
        known = self.recorded_checksums(chain)
        for path in self.segments(chain):
            if stream_position(path.name) < stream_position(first) or path.name not in known:
                continue
            if sha256_of(path) != known[path.name]:
                raise BackupError(
                    f"The archived WAL segment {path} is corrupt (its sha256 no longer matches "
                    f"the one recorded when it was archived). Nothing was changed."
                )

    # -- retention ---------------------------------------------------------------------------------

    def prune(self, *, keep_days: int, now: float | None = None) -> list[str]:
        """Delete base backups older than `keep_days`, and the WAL only they needed
        (pg_archivecleanup); the names of the base backups deleted.

        Never the newest of each database: after a lost data folder and a fresh start, the lost
        database's last state would otherwise go `keep_days` later, unrestored (`histories`)."""
        cutoff = (now or time.time()) - keep_days * 86400
        kept = {history.base_backups[-1].path for history in self.histories()}
        doomed = [
            backup
            for backup in self.base_backups()
            if backup.ended.timestamp() < cutoff and backup.path not in kept
        ]
        for backup in doomed:
            remove_tree(backup.path)
            backup.path.with_name(backup.name + ".json").unlink(missing_ok=True)
        if doomed:
            oldest = self.base_backups()[0]
            for chain in self.chains():
                if chain < oldest.chain:  # no base backup left starts there
                    self.remove_wal_keeping_histories(chain)
            subprocess.run(
                [str(tool("pg_archivecleanup")), str(self.wal_dir(oldest.chain)), oldest.start_wal],
                capture_output=True,
                check=False,
            )
        return [backup.name for backup in doomed]

    def remove_wal_keeping_histories(self, chain: str) -> None:
        """Delete `chain`'s WAL but not its history files. Recovery names its new timeline one
        above the last history file it finds scanning up from the recovered timeline, and stops
        at the first missing one: a gap would let a restore take a timeline already used."""
        folder = self.wal_dir(chain)
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            if path.name.endswith(".history"):
                continue
            if path.is_dir():
                remove_tree(path)
            else:
                path.unlink(missing_ok=True)


def stream_position(segment: str) -> tuple[int, int]:
    """Where the WAL segment named `segment` is in the stream, whatever its timeline."""
    _timeline, log, number = xlog.decode_segment_name(segment)
    return log, number


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def new_stamp() -> str:
    return datetime.now(UTC).strftime(STAMP_FORMAT)
