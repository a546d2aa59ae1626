import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups import dumps as backup


class Command(BaseCommand):
    help = (
        "Write a consistent pg_dump (custom format) of the database to a timestamped file in "
        "the backups folder ($BACKUP_DIR, default DATA_DIR/backups), with its sha256 beside it."
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
            "--list", action="store_true", help="list the backups in the folder; back up nothing"
        )

    def handle(self, *args, **options):
        folder = (options["dir"] or backup.default_folder()).resolve()
        if options["list"]:
            return self.list(folder)
        keep = options["keep"] if options["keep"] is not None else backup.default_keep()
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1: the newest backup is never deleted.")
        say = self.stdout.write if options["verbosity"] > 0 else None
        try:
            backup.connect(connection)
            version = connection.pg_version
            if say:
                say(f"Backing up {backup.describe_database(connection)} to {folder}")
            started = time.monotonic()
            made = backup.dump(
                settings_dict=connection.settings_dict,
                folder=folder,
                server_version=version,
                say=say,
            )
            elapsed = time.monotonic() - started
            deleted = backup.prune(folder, keep=keep, database=made.database) if keep else []
        except backup.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Wrote {made.path} ({backup.human_size(made.size)}, {elapsed:.1f} s); "
            f"sha256 in {made.checksum_path.name}"
        )
        for path in deleted:
            self.stdout.write(f"Deleted old backup {path.name} (keeping the newest {keep})")

    def list(self, folder: Path) -> None:
        backups = backup.list_backups(folder)
        if not backups:
            self.stdout.write(f"No backups in {folder}")
            return
        self.stdout.write(f"{len(backups)} backups in {folder}, oldest first:")
        for item in backups:
            checksum = "sha256" if item.checksum_path.exists() else "no sha256"
            self.stdout.write(
                f"  {item.path.name}  {backup.human_size(item.size):>9}  "
                f"{item.taken:%Y-%m-%d %H:%M} UTC  {checksum}"
            )
