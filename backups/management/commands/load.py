from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backups.database import connect, describe_database, server_version
from backups.dumps.catalogue import latest_backup
from backups.dumps.dump import dump
from backups.dumps.load import load, tables_with_rows
from backups.dumps.validate import validate
from backups.errors import BackupError
from backups.folder import default_folder
from core.files import human_size


class Command(BaseCommand):
    help = (
        "Load a pg_dump file made by `dump` into the database: read to its end and checked "
        "against its sha256 first, then loaded in one transaction. `restore` restores a point "
        "in time from the continuous archive instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", type=Path, help="the .dump file to load")
        parser.add_argument(
            "--latest", action="store_true", help="load the newest dump in the folder"
        )
        parser.add_argument(
            "--dir",
            type=Path,
            help="folder --latest looks in (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the data when the database is not empty (it is dumped first)",
        )
        parser.add_argument(
            "--no-backup-first",
            action="store_true",
            help="with --force: do not dump the data being replaced",
        )

    def handle(self, *args, **options):
        try:
            self.load_dump(options)
        except BackupError as error:
            raise CommandError(str(error)) from None

    def load_dump(self, options) -> None:
        folder = (options["dir"] or default_folder()).resolve()
        path = self.chosen_file(options, folder)
        say = self.stdout.write if options["verbosity"] > 0 else None

        summary = validate(path)
        checksum = "matches its sha256" if summary.checksum_verified else "no sha256 recorded"
        self.stdout.write(
            f"Checked {path}: {human_size(summary.size)}, database "
            f"{summary.database or '?'}, PostgreSQL {summary.server_version or '?'}, written "
            f"{summary.created or '?'}, {len(summary.tables)} tables, readable to the end, "
            f"{checksum}"
        )

        connect(connection)
        target = describe_database(connection)
        with connection.cursor() as cursor:
            existing = tables_with_rows(cursor)
        if existing:
            listed = ", ".join(f"{table} ({rows} rows)" for table, rows in existing.items())
            if not options["force"]:
                raise CommandError(
                    f"The database {target} already holds data: {listed}. Nothing was changed. "
                    f"To replace it with the dump, run again with --force (the current data "
                    f"is dumped first)."
                )
            if not options["no_backup_first"]:
                self.stdout.write("Dumping the data about to be replaced")
                saved = dump(
                    settings_dict=connection.settings_dict,
                    folder=folder,
                    server_version=server_version(connection),
                    say=say,
                )
                self.stdout.write(
                    f"Saved the current data to {saved.path} ({human_size(saved.size)})"
                )
            self.stdout.write(f"Replacing the data in {target}: {listed}")
        else:
            self.stdout.write(f"Loading into {target} (no data there yet)")

        # pg_restore drops and re-creates the tables: hold nothing open on them meanwhile.
        settings_dict = dict(connection.settings_dict)
        connection.close()
        elapsed = load(path=path, settings_dict=settings_dict, say=say)

        with connection.cursor() as cursor:
            restored = tables_with_rows(cursor)
        counts = ", ".join(f"{table} ({rows} rows)" for table, rows in restored.items())
        self.stdout.write(f"Restored {path.name} in {elapsed:.1f} s: {counts or 'no rows'}")
        self.report_migrations()

    def chosen_file(self, options, folder: Path) -> Path:
        if options["latest"] == bool(options["file"]):
            raise CommandError(
                "Name the dump file to load, or pass --latest (not both). Nothing was changed."
            )
        if options["file"]:
            return options["file"].resolve()
        latest = latest_backup(folder)
        if latest is None:
            raise CommandError(
                f"No pg_dump file in {folder} (`manage.py dump` makes one). To load one kept "
                f"elsewhere, name it: `manage.py load FILE`. Nothing was changed."
            )
        return latest.path

    def report_migrations(self) -> None:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            self.stdout.write(
                f"The dump predates {len(pending)} of this code's migrations: `serve` applies "
                f"them at start, or run `manage.py migrate`."
            )
