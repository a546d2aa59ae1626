import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.database import connect, describe_database, server_version
from backups.dumps.catalogue import default_keep, list_backups, prune
from backups.dumps.dump import dump
from backups.dumps.schedule import RETRY_SECONDS, parse_interval, repeat
from backups.errors import BackupError
from backups.folder import default_folder
from backups.inventory import dump_lines
from core.files import human_size
from core.say import Say


class Command(BaseCommand):
    help = (
        "Write a portable pg_dump file (custom format, restorable into any newer PostgreSQL and "
        "into a configured server) of the database to a timestamped file in the backups folder "
        "($BACKUP_DIR, default DATA_DIR/backups), with its sha256; with --every, keep doing so "
        "until stopped. `load` loads one; `backup` takes a base backup instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir",
            type=Path,
            help="folder for the dumps (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )
        parser.add_argument(
            "--keep",
            type=int,
            metavar="N",
            help="then delete this database's older dumps, keeping the newest N "
            "(default: $BACKUP_KEEP; unset: keep all)",
        )
        parser.add_argument(
            "--every",
            metavar="SECONDS",
            help="keep running: a dump now, then one every SECONDS (pruned to --keep each "
            f"time; a failed one is tried again within {RETRY_SECONDS} s), until SIGTERM or "
            "Ctrl-C",
        )
        parser.add_argument(
            "--list", action="store_true", help="list the dumps in the folder; dump nothing"
        )

    def handle(self, *args, **options):
        folder = (options["dir"] or default_folder()).resolve()
        if options["list"]:
            if options["every"] is not None:
                raise CommandError("Pass --list or --every, not both. Nothing was changed.")
            return self.list(folder)
        keep = options["keep"] if options["keep"] is not None else default_keep()
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1: the newest dump is never deleted.")
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
            self.stdout.write(f"Deleted old dump {path.name} (keeping the newest {keep})")

    def once(self, folder: Path, keep: int | None, say: Say | None):
        """One dump, then the pruning: (the dump, seconds taken, the files deleted)."""
        connect(connection)
        if say:
            say(f"Dumping {describe_database(connection)} to {folder}")
        started = time.monotonic()
        made = dump(
            settings_dict=connection.settings_dict,
            folder=folder,
            server_version=server_version(connection),
            say=say,
        )
        elapsed = time.monotonic() - started
        deleted = prune(folder, keep=keep, database=made.database) if keep else []
        return made, elapsed, deleted

    def every(self, interval: int, folder: Path, keep: int | None) -> None:
        kept = f"keeping the newest {keep}" if keep else "keeping all"
        self.stdout.write(
            f"Dumping {describe_database(connection)} to {folder} every {interval} s, "
            f"{kept}, until SIGTERM or Ctrl-C"
        )

        def one_dump() -> None:
            try:
                made, elapsed, deleted = self.once(folder, keep, say=None)
            finally:
                connection.close()  # nothing held open between dumps
            pruned = f"; deleted {len(deleted)} older" if deleted else ""
            self.stdout.write(
                f"Wrote {made.path} ({human_size(made.size)}, {elapsed:.1f} s){pruned}"
            )

        def failed(error: BackupError) -> None:
            self.stderr.write(
                f"Dump failed: {error} The earlier dumps are untouched; next try in "
                f"{min(interval, RETRY_SECONDS)} s."
            )

        stopped_by = repeat(one_dump, every=interval, failed=failed)
        self.stdout.write(f"Stopped ({stopped_by}); every dump in {folder} is complete.")

    def list(self, folder: Path) -> None:
        dumps = list_backups(folder)
        if not dumps:
            self.stdout.write(f"No pg_dump files in {folder} (`manage.py dump` makes one)")
            return
        self.stdout.write(f"pg_dump files in {folder}: {len(dumps)}, oldest first")
        for line in dump_lines(dumps):
            self.stdout.write(line)
