"""Continuous protection of the embedded database, run by `serve`: WAL streamed as it is written,
base backups on a schedule, old ones pruned.

`pg_receivewal --synchronous` on a replication slot receives the WAL as the server writes it and
fsyncs it at once, so the archive is behind the server by milliseconds (measured:
docs/data-safety.md). The slot keeps the server from recycling WAL the receiver has not got yet,
so nothing is lost while it is down (between two `serve`s, or after a crash); the price is that
WAL then piles up in pg_wal, which `status`, `/readyz` and the log report before it can fill the
disk. One process at a time protects a data folder (a lock in the archive): others only serve.
"""

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import psycopg
from barman import xlog

from backups.continuous.archive import Archive
from backups.continuous.base_backup import take_base_backup
from backups.continuous.offsite import OffSite
from backups.errors import BackupError
from backups.progress import error_lines
from backups.tools import child_environment, tool
from core.files import locked_file
from core.processes import signal_when_parent_dies
from core.say import Say
from pgembedded.roles import PostgresServer

SLOT = "keepnotes_backup"
APPLICATION = "keepnotes-backup"
CHECK_SECONDS = 1.0
DISK_CHECK_SECONDS = 10.0  # one short connection to the server each time
OFFSITE_BASE = "OFFSITE_BASE"  # in a chain's folder: its off-site base backup was taken
OFFSITE_CHECK = "OFFSITE_CHECK"  # in a new history's folder until the store is checked for it
RESTART_SECONDS = 2.0
logger = logging.getLogger("backups")


def ensure_slot(server: PostgresServer) -> bool:
    """The replication slot, reserving WAL from now; True when it had to be made."""
    with server.connect(dbname="postgres", autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [SLOT]
        ).fetchone()
        if exists:
            return False
        connection.execute("SELECT pg_create_physical_replication_slot(%s, true)", [SLOT])
        return True


class Protection(threading.Thread):
    """Keeps pg_receivewal running, takes base backups when due, prunes, and reports."""

    def __init__(
        self,
        *,
        server: PostgresServer,
        archive: Archive,
        base_every: int,
        keep_days: int,
        warn: Say,
        offsite: OffSite | None = None,
        offsite_every: int = 60,
    ):
        super().__init__(name="backups-protection", daemon=True)
        self.server, self.archive = server, archive
        self.base_every, self.keep_days, self.warn = base_every, keep_days, warn
        self.stopping = threading.Event()
        # Set once every write from now on can be restored: at once on a history that has a
        # base backup, after its first one on a new history (`serve` waits for it).
        self.settled = threading.Event()
        self.receiver: subprocess.Popen | None = None
        self.chain: str  # the chain the WAL streams into, chosen by claim()
        self.needs_base = False
        self._lock: TextIO | None = None
        self._owner_pid = os.getpid()
        self.offsite, self.offsite_every = offsite, offsite_every
        self.offsite_base_due = False
        self._last_partial = 0.0
        self._partial_state: tuple[str, int] | None = None
        self._next_offsite_check = 0.0

    def claim(self) -> bool:
        """Take the archive's lock (one protecting process per folder) and ready the slot."""
        self.archive.make_folders()
        lock = locked_file(self.archive.folder / "protection.lock", wait=False)
        if lock is None:
            return False
        self._lock = lock
        made = ensure_slot(self.server)
        chain = self.archive.current_chain()
        if made or chain is None:
            chain = self.archive.new_chain()  # a new history: a new chain, a base first
            (self.archive.wal_dir(chain) / OFFSITE_CHECK).touch()
            self._warn_if_another_database_came_first()
        self.chain = chain
        self.needs_base = made or self.archive.newest_base_backup(self.chain) is None
        marker = self.archive.wal_dir(self.chain) / OFFSITE_BASE
        self.offsite_base_due = self.offsite is not None and not marker.exists()
        return True

    def _warn_if_another_database_came_first(self) -> None:
        """A new database where the archive protected another: after a lost data folder or
        volume, a start before the restore creates an empty one. Both histories are kept (the
        new one may already take writes), and `restore --latest` asks which."""
        histories = self.archive.histories()
        if not histories:
            return
        try:
            with self.server.connect(dbname="postgres", autocommit=True) as connection:
                row = connection.execute(
                    "SELECT system_identifier::text FROM pg_control_system()"
                ).fetchone()
        except psycopg.Error:  # a role without pg_monitor, say: protect all the same
            return
        current = row[0] if row else None
        if current not in {history.system_identifier for history in histories}:
            before = max(histories, key=lambda history: history.latest)
            self.warn(
                f"This is a new database (system {current}), and the archive "
                f"{self.archive.folder} holds another's history (database "
                f"{before.system_identifier}, recoverable to "
                f"{before.latest.isoformat(timespec='seconds')}). Both are kept. If this one was "
                f"created after that one was lost, stop the app and restore it now: "
                f"`manage.py restore --latest --database {before.system_identifier} --force` "
                f"(compose: through the `restore` service, docs/data-safety.md)."
            )

    def stop(self) -> None:
        if os.getpid() != self._owner_pid:
            return  # a forked server worker exiting: the receiver is its parent's
        self.stopping.set()
        if self.receiver and self.receiver.poll() is None:
            self.receiver.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.receiver.wait(5)
        self.join(10)

    def run(self) -> None:
        next_base = 0.0 if self.needs_base else self._next_base_due()
        next_disk_check = 0.0
        while not self.stopping.is_set():
            self._keep_receiving()
            if time.time() >= next_base:
                next_base = self._base_backup()
            self.settled.set()
            try:
                self.archive.record_checksums(self.chain)
                if time.time() >= next_disk_check:
                    next_disk_check = time.time() + DISK_CHECK_SECONDS
                    self._warn_before_the_disk_fills()
                if self.offsite is not None:
                    self._ship_offsite(self.offsite)
            except Exception as error:  # never let the bookkeeping end the protection
                logger.warning("Backup bookkeeping failed: %s", error)
            self.stopping.wait(CHECK_SECONDS)

    # -- steps -------------------------------------------------------------------------------------

    def _keep_receiving(self) -> None:
        if self.receiver is not None and self.receiver.poll() is None:
            return
        if self.receiver is not None:
            stderr = self.receiver.communicate()[1].decode(errors="replace")
            reason = error_lines(stderr) or stderr.strip() or f"exit {self.receiver.returncode}"
            self._record_error(f"pg_receivewal stopped: {reason}")
            self.stopping.wait(RESTART_SECONDS)
            if self.stopping.is_set():
                return
        self.receiver = subprocess.Popen(
            [
                str(tool("pg_receivewal")),
                "--directory",
                str(self.archive.wal_dir(self.chain)),
                "--slot",
                SLOT,
                "--synchronous",
                "--no-loop",
                "--no-password",
                "--status-interval=1",
                f"--dbname=application_name={APPLICATION}",
            ],
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            umask=0o077,
            preexec_fn=signal_when_parent_dies(signal.SIGKILL),
        )

    def _base_backup(self) -> float:
        try:
            made = take_base_backup(
                archive=self.archive, chain=self.chain, settings_dict=self._settings()
            )
        except BackupError as error:
            self._record_error(f"Base backup failed: {error}")
            return time.time() + 300
        logger.info("Base backup %s taken and verified", made.path)
        self.needs_base = False
        self.offsite_base_due = self.offsite is not None
        self.archive.error_file.unlink(missing_ok=True)
        pruned = self.archive.prune(keep_days=self.keep_days)
        if pruned:
            logger.info("Pruned base backups older than %s days: %s", self.keep_days, pruned)
        return time.time() + self.base_every

    def _ship_offsite(self, offsite: OffSite) -> None:
        """Complete segments to the store, and every `offsite_every` s the one being written
        (as `<name>.partial`, replaced as it grows; barman-cloud-wal-restore falls back to it)."""
        folder = self.archive.wal_dir(self.chain)
        if not self._offsite_store_takes_this_history(offsite, folder):
            return
        if self.offsite_base_due and not self.needs_base:
            try:
                offsite.base_backup(self._settings())
            except BackupError as error:
                self._record_error(f"Off-site base backup failed: {error}")
            else:
                (folder / OFFSITE_BASE).touch()
                self.offsite_base_due = False
        names = sorted(
            path.name
            for path in folder.iterdir()
            if xlog.is_wal_file(path.name) or xlog.is_history_file(path.name)
        )
        try:
            shipped = offsite.ship_pending(folder, names)
            if time.time() - self._last_partial >= self.offsite_every:
                shipped += self._ship_partial(offsite, folder)
        except BackupError as error:
            self._record_error(f"Off-site WAL archiving failed (the WAL waits locally): {error}")
            return
        if shipped and self.archive.error_file.exists():
            self.archive.error_file.unlink(missing_ok=True)

    def _offsite_store_takes_this_history(self, offsite: OffSite, folder: Path) -> bool:
        """A new history ships nothing until the store is checked for it, once (a minute
        between tries): after a lost disk, a fresh start must not overwrite the copy."""
        if not (folder / OFFSITE_CHECK).exists():
            return True
        if time.time() < self._next_offsite_check:
            return False
        base = self.archive.newest_base_backup(self.chain)
        if base is None:
            return False  # its timeline is its base backup's, taken first
        try:
            takes = offsite.takes_new_history(base.timeline)
        except BackupError as error:
            takes, reason = False, f"it could not be checked for this new history: {error}"
        else:
            reason = (
                f"it already holds WAL of timeline {base.timeline} or later, another "
                f"database's (a new one after a lost disk?), which this one's would overwrite. "
                f"Restore from it first, or give this database its own BACKUP_URL"
            )
        if not takes:
            self._next_offsite_check = time.time() + 60
            self._record_error(f"Nothing is sent to {offsite.describe()} yet: {reason}.")
            return False
        (folder / OFFSITE_CHECK).unlink()
        return True

    def _ship_partial(self, offsite: OffSite, folder: Path) -> int:
        partials = sorted(folder.glob("*.partial"))
        if not partials:
            return 0
        current = partials[-1]
        state = (current.name, current.stat().st_mtime_ns)
        if state == self._partial_state:
            return 0  # nothing written since it was last sent
        offsite.ship_wal(current)
        self._partial_state, self._last_partial = state, time.time()
        return 1

    def _next_base_due(self) -> float:
        backups = self.archive.base_backups()
        return backups[-1].ended.timestamp() + self.base_every if backups else 0.0

    def _warn_before_the_disk_fills(self) -> None:
        retained = retained_wal_bytes(self.server)
        free = shutil.disk_usage(self.server.pgdata).free
        warning = wal_queue_warning(retained, free) if retained is not None else None
        if warning:
            self.warn(warning)

    def _record_error(self, message: str) -> None:
        logger.warning(message)
        stamped = f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}"
        with contextlib.suppress(OSError):
            self.archive.error_file.write_text(stamped + "\n")

    def _settings(self) -> dict:
        return self.server.connection_settings()

    def _environment(self) -> dict:
        environ = child_environment(self._settings())
        environ.pop("PGDATABASE", None)
        return environ


def retained_wal_bytes(server: PostgresServer) -> int | None:
    """WAL the slot keeps in pg_wal for the receiver (the local queue); None without a slot."""
    with server.connect(dbname="postgres") as connection:
        row = connection.execute(
            "SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots "
            "WHERE slot_name = %s",
            [SLOT],
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


# The queue is alarming once it could fill the disk's free space within 4 times its own size.
WAL_QUEUE_FREE_RATIO = 4


def wal_queue_warning(retained: int, free: int) -> str | None:
    """What to say when the WAL waiting for the archive could soon fill the disk, else None."""
    if retained <= 64 * 1024 * 1024 or retained * WAL_QUEUE_FREE_RATIO <= free:
        return None
    return (
        f"WARNING: {retained // 1_000_000} MB of WAL wait in pg_wal for the archive, with "
        f"{free // 1_000_000} MB free on that disk: the archive is not keeping up (see `manage.py "
        f"status`). If the disk fills, PostgreSQL stops."
    )
