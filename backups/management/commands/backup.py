import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.continuous.archive import Archive
from backups.continuous.base_backup import take_base_backup
from backups.continuous.files import drill_check, file_archive, offsite_files
from backups.continuous.offsite import from_settings
from backups.continuous.verify_restore import table_counts, verify_restore
from backups.database import connect
from backups.deprecated_forms import say_deprecated
from backups.dumps.catalogue import list_backups
from backups.errors import BackupError
from backups.folder import default_folder
from backups.inventory import dump_lines
from core.files import folder_size, human_size


class Command(BaseCommand):
    help = (
        "Take a base backup now, into the continuous archive (checked with pg_verifybackup): of "
        "the embedded database, or of a configured one whose archive `protect` keeps (the "
        "compose `backup` service). `restore` restores a point in time from it; `dump` writes a "
        "portable pg_dump file instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir",
            type=Path,
            help="folder for the backups (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )
        parser.add_argument(
            "--list",
            action="store_true",
            help="list the base backups, the window they give and the pg_dump files; back up "
            "nothing",
        )
        parser.add_argument(
            "--verify-restore",
            action="store_true",
            help="the restore drill: restore the newest base backup and its WAL into a scratch "
            "folder, start it, compare its row counts with the live database's; back up nothing",
        )
        # Deprecated: `dump` makes pg_dump files. Kept one release, for scripts that use them.
        parser.add_argument("--logical", action="store_true", help="deprecated: use `dump`")
        parser.add_argument("--keep", type=int, metavar="N", help="deprecated: `dump --keep N`")
        parser.add_argument("--every", metavar="SECONDS", help="deprecated: `dump --every`")

    def handle(self, *args, **options):
        folder = (options["dir"] or default_folder()).resolve()
        if options["list"]:
            if options["every"] is not None:
                raise CommandError("Pass --list or --every, not both. Nothing was changed.")
            return self.list(folder)
        if options["verify_restore"]:
            return self.verify_restore(folder)
        old_form = self.old_dump_form(options, folder)
        if old_form:
            say_deprecated(self.stderr, *old_form)
            return self.dump(options)
        self.base_backup(folder)

    def old_dump_form(self, options, folder: Path) -> tuple[str, str] | None:
        """The deprecated form that made a pg_dump file: (as it was run, as `dump`), else None."""
        flags = [
            f"--{name} {options[name]}" for name in ("keep", "every") if options[name] is not None
        ]
        if options["logical"] or flags:
            old = ["backup", "--logical"] if options["logical"] else ["backup"]
            return " ".join([*old, *flags]), " ".join(["dump", *flags])
        if not settings.EMBEDDED_DATABASE and not Archive(folder).chains():
            # Before, `backup` on a configured server that nothing archives here made a dump.
            return "backup (of a server no continuous archive here protects)", "dump"
        return None

    def dump(self, options) -> None:
        call_command(
            "dump",
            dir=options["dir"],
            keep=options["keep"],
            every=options["every"],
            verbosity=options["verbosity"],
            stdout=self.stdout,
            stderr=self.stderr,
        )

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
                check_files=drill_check(file_archive(folder), offsite_files(from_settings())),
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
            f"{len(drill.restored)} tables; {drill.files} files they name, each intact in "
            f"the archive."
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
            f"({time.monotonic() - started:.1f} s). For a portable pg_dump file: `manage.py dump`."
        )

    def list(self, folder: Path) -> None:
        archive = Archive(folder)
        bases = archive.base_backups()
        if bases:
            self.stdout.write(f"Base backups in {archive.base_dir}: {len(bases)}, oldest first")
            for backup in bases:
                self.stdout.write(
                    f"  {backup.name}  ended {backup.ended.isoformat(timespec='seconds')}  "
                    f"{human_size(folder_size(backup.path)):>9}"
                )
        else:
            self.stdout.write(f"No base backups in {archive.base_dir} (`backup` takes one)")
        window = archive.window()
        if window:
            self.stdout.write(
                f"Window: restorable from {window[0].isoformat(timespec='seconds')} to "
                f"{window[1].isoformat(timespec='seconds')} (`restore --list` shows each branch)"
            )
        dumps = list_backups(folder)
        if not dumps:
            self.stdout.write(f"No pg_dump files in {folder}")
            return
        say_deprecated(self.stderr, "backup --list (of pg_dump files)", "dump --list")
        self.stdout.write(f"pg_dump files in {folder}: {len(dumps)}, oldest first")
        for line in dump_lines(dumps):
            self.stdout.write(line)
