import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.archive import Archive
from backups.base_backup import take_base_backup
from backups.catalogue import default_folder, default_keep, list_backups, prune
from backups.database import connect, describe_database
from backups.dump import dump
from backups.errors import BackupError
from backups.progress import Say
from backups.schedule import RETRY_SECONDS, parse_interval, repeat
from backups.verify_restore import table_counts, verify_restore
from core.files import human_size


class Command(BaseCommand):
    help = (
        "Take a base backup now, into the continuous archive (checked with pg_verifybackup): of "
        "the embedded database, or of a configured one whose archive `protect` keeps (the "
        "compose `backup` service). With --logical (implied by --keep, --every, --list and by "
        "any other configured DATABASE_URL), write a portable pg_dump (custom format) to a "
        "timestamped file in the backups folder ($BACKUP_DIR, default DATA_DIR/backups), with "
        "its sha256; with --every, keep doing so until stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir",
            type=Path,
            help="folder for the backups (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )
        parser.add_argument(
            "--keep",
            type=int,
            metavar="N",
            help="then delete this database's older backups, keeping the newest N "
            "(default: $BACKUP_KEEP; unset: keep all)",
        )
        parser.add_argument(
            "--every",
            metavar="SECONDS",
            help="keep running: a backup now, then one every SECONDS (pruned to --keep each "
            f"time; a failed one is tried again within {RETRY_SECONDS} s), until SIGTERM or "
            "Ctrl-C",
        )
        parser.add_argument(
            "--list", action="store_true", help="list the backups in the folder; back up nothing"
        )
        parser.add_argument(
            "--verify-restore",
            action="store_true",
            help="the restore drill: restore the newest base backup and its WAL into a scratch "
            "folder, start it, compare its row counts with the live database's; back up nothing",
        )
        parser.add_argument(
            "--logical",
            action="store_true",
            help="a pg_dump file (portable to any newer PostgreSQL) instead of a base backup",
        )

    def handle(self, *args, **options):
        folder = (options["dir"] or default_folder()).resolve()
        if options["list"]:
            if options["every"] is not None:
                raise CommandError("Pass --list or --every, not both.")
            return self.list(folder)
        if options["verify_restore"]:
            return self.verify_restore(folder)
        logical = options["logical"] or options["every"] is not None or options["keep"] is not None
        # A configured server gets a base backup too once `protect` archives it (compose).
        if not logical and (settings.EMBEDDED_DATABASE or Archive(folder).chains()):
            return self.base_backup(folder)
        keep = options["keep"] if options["keep"] is not None else default_keep()
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1: the newest backup is never deleted.")
        try:
            if options["every"] is not None:
                return self.every(parse_interval(options["every"]), folder, keep)
            say = self.stdout.write if options["verbosity"] > 0 else None
            made, elapsed, deleted = self.once(folder, keep, say)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Wrote {made.path} ({human_size(made.size)}, {elapsed:.1f} s); "
            f"sha256 in {made.checksum_path.name}"
        )
        for path in deleted:
            self.stdout.write(f"Deleted old backup {path.name} (keeping the newest {keep})")

    def verify_restore(self, folder: Path) -> None:
        if not settings.EMBEDDED_DATABASE:
            raise CommandError("--verify-restore drills the embedded database's archive.")
        try:
            connect(connection)
            with connection.cursor() as cursor:
                live = table_counts(cursor)
            drill = verify_restore(
                archive=Archive(folder),
                data_dir=settings.DATA_DIR,
                live_counts=live,
                say=self.stdout.write,
            )
        except BackupError as error:
            raise CommandError(f"Restore drill failed: {error}") from None
        for table in sorted(drill.live.keys() | drill.restored.keys()):
            restored, now = drill.restored.get(table, "-"), drill.live.get(table, "-")
            mark = "" if restored == now else "  (changed since)"
            self.stdout.write(f"  {table:<40} restored {restored:>8}  live {now:>8}{mark}")
        if drill.missing_tables:
            raise CommandError(
                f"Restore drill failed: the restored {drill.base} lacks the tables "
                f"{', '.join(drill.missing_tables)}."
            )
        self.stdout.write(
            f"Restore drill passed: {drill.base} and its WAL restored, started and read "
            f"({drill.reached}); {sum(drill.restored.values())} rows in "
            f"{len(drill.restored)} tables."
        )

    def base_backup(self, folder: Path) -> None:
        archive = Archive(folder)
        try:
            connect(connection)
            started = time.monotonic()
            made = take_base_backup(
                archive=archive,
                chain=archive.current_chain() or archive.new_chain(),
                settings_dict=connection.settings_dict,
            )
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Base backup {made.path} taken and checked with pg_verifybackup "
            f"({time.monotonic() - started:.1f} s). For a portable pg_dump file: --logical."
        )

    def once(self, folder: Path, keep: int | None, say: Say | None):
        """One backup, then the pruning: (the backup, seconds taken, the files deleted)."""
        connect(connection)
        if say:
            say(f"Backing up {describe_database(connection)} to {folder}")
        started = time.monotonic()
        made = dump(
            settings_dict=connection.settings_dict,
            folder=folder,
            server_version=connection.pg_version,
            say=say,
        )
        elapsed = time.monotonic() - started
        deleted = prune(folder, keep=keep, database=made.database) if keep else []
        return made, elapsed, deleted

    def every(self, interval: int, folder: Path, keep: int | None) -> None:
        kept = f"keeping the newest {keep}" if keep else "keeping all"
        self.stdout.write(
            f"Backing up {describe_database(connection)} to {folder} every {interval} s, "
            f"{kept}, until SIGTERM or Ctrl-C"
        )

        def backup() -> None:
            try:
                made, elapsed, deleted = self.once(folder, keep, say=None)
            finally:
                connection.close()  # nothing held open between backups
            pruned = f"; deleted {len(deleted)} older" if deleted else ""
            self.stdout.write(
                f"Wrote {made.path} ({human_size(made.size)}, {elapsed:.1f} s){pruned}"
            )

        def failed(error: BackupError) -> None:
            self.stderr.write(
                f"Backup failed: {error} The earlier backups are untouched; next try in "
                f"{min(interval, RETRY_SECONDS)} s."
            )

        stopped_by = repeat(backup, every=interval, failed=failed)
        self.stdout.write(f"Stopped ({stopped_by}); every backup in {folder} is complete.")

    def list(self, folder: Path) -> None:
        backups = list_backups(folder)
        if not backups:
            self.stdout.write(f"No backups in {folder}")
            return
        self.stdout.write(f"{len(backups)} backups in {folder}, oldest first:")
        for item in backups:
            checksum = "sha256" if item.checksum_path.exists() else "no sha256"
            self.stdout.write(
                f"  {item.path.name}  {human_size(item.size):>9}  "
                f"{item.taken:%Y-%m-%d %H:%M} UTC  {checksum}"
            )
