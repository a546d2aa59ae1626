from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backups.archive import Archive
from backups.branches import branches
from backups.catalogue import default_folder, latest_backup
from backups.database import connect, describe_database
from backups.dump import dump
from backups.errors import BackupError
from backups.mounted_data_folder import MountedDataFolder
from backups.offsite import from_settings
from backups.offsite_restore import OffSiteSource
from backups.point_in_time import LocalSource, no_base_backup, parse_target, restore_to
from backups.restore import restore, tables_with_rows
from backups.validate import validate
from core import env
from core.files import folder_size as folder_bytes
from core.files import human_size


class Command(BaseCommand):
    help = (
        "Restore the embedded data folder to a point in time from the continuous archive "
        "(--to, --latest, --list), or a pg_dump file made by `backup --logical` into the "
        "configured database (read to its end first, restored in one transaction)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", type=Path, help="the .dump file to restore")
        parser.add_argument(
            "--to",
            metavar="TIME",
            help="restore the embedded data folder as it was at this ISO-8601 time (UTC when "
            "no offset is given), from the continuous archive",
        )
        parser.add_argument(
            "--latest",
            action="store_true",
            help="restore the newest recoverable point of the continuous archive (without one: "
            "the newest pg_dump file in the folder)",
        )
        parser.add_argument(
            "--database",
            metavar="SYSTEM_ID",
            help="when the archive holds more than one database (`--list` names them), "
            "restore this one's history",
        )
        parser.add_argument(
            "--list",
            action="store_true",
            help="show the recoverable window and the base backups; restore nothing",
        )
        parser.add_argument(
            "--dir",
            type=Path,
            help="folder --latest looks in (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the data when the database is not empty (a pg_dump restore backs it up "
            "first; a point-in-time restore moves the data folder aside)",
        )
        parser.add_argument(
            "--no-backup-first",
            action="store_true",
            help="with --force: do not back up the data being replaced",
        )

    def handle(self, *args, **options):
        archive = Archive((options["dir"] or default_folder()).resolve())
        try:
            if options["list"]:
                return self.list(archive)
            if options["database"] and options["to"] is None and not options["latest"]:
                raise CommandError("--database goes with --latest or --to.")
            continuous = archive.base_backups() or settings.BACKUP_URL
            if options["latest"] and not continuous and archive.newest_wal_time():
                # Not "no pg_dump file": the archive is there, and can restore nothing.
                raise no_base_backup(archive)
            if (
                options["to"] is not None
                or options["database"]
                or (options["latest"] and continuous)
            ):
                return self.restore_point(options, archive)
            self.restore(options)
        except BackupError as error:
            raise CommandError(str(error)) from None

    def restore_point(self, options, archive: Archive) -> None:
        if options["file"] or (options["to"] is not None and options["latest"]):
            raise CommandError("Pass one of FILE, --to TIME or --latest.")
        server = self.server_to_restore()
        target = parse_target(options["to"]) if options["to"] is not None else None
        # The local archive when it has a base backup; else the off-site store, if configured.
        offsite = from_settings()
        source = (
            OffSiteSource(offsite)
            if offsite is not None and not archive.base_backups()
            else LocalSource(
                archive, database=options["database"], offsite=offsite, say=self.stdout.write
            )
        )
        if options["database"] and isinstance(source, OffSiteSource):
            raise CommandError(
                "--database chooses within the local archive, which has no base backup; the "
                "off-site store holds one database per BACKUP_URL."
            )
        done = restore_to(
            server=server,
            source=source,
            target=target,
            force=options["force"],
            say=self.stdout.write,
        )
        self.stdout.write(
            f"Restored from {source.describe()} to "
            f"{target.isoformat() if target else 'its newest point'} from base backup "
            f"{done.base.name} in {done.seconds:.1f} s ({done.reached})."
        )
        if done.moved_aside:
            self.stdout.write(
                f"The data folder it replaced is kept in {done.moved_aside}: delete it once "
                f"the restored data is right."
            )
        if settings.EMBEDDED_DATABASE:
            self.stdout.write("`serve` starts on it, and takes a new base backup at once.")
        else:
            self.stdout.write(
                "Start the database on it (compose: `docker compose up -d`); the backup "
                "service then takes a new base backup at once."
            )

    def server_to_restore(self):
        """The embedded server, or the data folder of a configured one mounted at $PGDATA (the
        compose `restore` service mounts the db volume there)."""
        if settings.EMBEDDED_DATABASE:
            return connection.embedded_server()
        pgdata = env.get_str("PGDATA")
        if not pgdata:
            raise CommandError(
                "--to and --latest rebuild a data folder, and this configured server's is not "
                "mounted here (PGDATA is unset). On compose: `docker compose stop`, then "
                "`docker compose run --rm restore python manage.py restore --latest` "
                "(docs/data-safety.md#docker-compose). Elsewhere the server is restored by its own "
                "tools, or restore a pg_dump FILE."
            )
        return MountedDataFolder(Path(pgdata), connection.settings_dict)

    def list(self, archive: Archive) -> None:
        window = archive.window()
        if window is None:
            self.stdout.write(f"No base backups in {archive.base_dir}: nothing to restore yet.")
            return
        earliest, latest = window
        self.stdout.write(
            f"Recoverable from {earliest.isoformat(timespec='seconds')} to "
            f"{latest.isoformat(timespec='milliseconds')} (archive {archive.folder})"
        )
        found = branches(archive)
        count = sum(len(branch.base_backups) for branch in found)
        plural = "" if len(found) == 1 else "es"
        self.stdout.write(
            f"{len(found)} branch{plural}, {count} base backups, oldest first. A branch is served "
            f"from the end of its first base backup until the next one's; `--to TIME` restores "
            f"the branch served at TIME."
        )
        for branch, following in zip(found, [*found[1:], None], strict=True):
            until = following.served_from.isoformat(timespec="seconds") if following else "now"
            fork = (
                f"forked from timeline {branch.fork.parent} at {branch.fork.lsn}"
                f" ({branch.fork.reason or 'no reason recorded'})"
                if branch.fork
                else "the database's first timeline"
            )
            self.stdout.write(
                f"timeline {branch.timeline}, database {branch.system_identifier or '?'}, {fork}:"
            )
            self.stdout.write(
                f"  served from {branch.served_from.isoformat(timespec='seconds')} to {until}, "
                f"restorable from {branch.served_from.isoformat(timespec='seconds')} to "
                f"{branch.latest.isoformat(timespec='milliseconds')} (chain {branch.chain})"
            )
            for backup in branch.base_backups:
                self.stdout.write(
                    f"  {backup.name}  ended {backup.ended.isoformat(timespec='seconds')}  "
                    f"{human_size(folder_bytes(backup.path))}"
                )

    def restore(self, options) -> None:
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
                    f"To replace it with the backup, run again with --force (the current data "
                    f"is backed up first)."
                )
            if not options["no_backup_first"]:
                self.stdout.write("Backing up the data about to be replaced")
                saved = dump(
                    settings_dict=connection.settings_dict,
                    folder=folder,
                    server_version=connection.pg_version,
                    say=say,
                )
                self.stdout.write(
                    f"Saved the current data to {saved.path} ({human_size(saved.size)})"
                )
            self.stdout.write(f"Replacing the data in {target}: {listed}")
        else:
            self.stdout.write(f"Restoring into {target} (no data there yet)")

        # pg_restore drops and re-creates the tables: hold nothing open on them meanwhile.
        settings_dict = dict(connection.settings_dict)
        connection.close()
        elapsed = restore(path=path, settings_dict=settings_dict, say=say)

        with connection.cursor() as cursor:
            restored = tables_with_rows(cursor)
        counts = ", ".join(f"{table} ({rows} rows)" for table, rows in restored.items())
        self.stdout.write(f"Restored {path.name} in {elapsed:.1f} s: {counts or 'no rows'}")
        self.report_migrations()

    def chosen_file(self, options, folder: Path) -> Path:
        if options["latest"] == bool(options["file"]):
            raise CommandError("Name the backup file to restore, or pass --latest (not both).")
        if options["file"]:
            return options["file"].resolve()
        latest = latest_backup(folder)
        if latest is None:
            raise CommandError(
                f"Nothing to restore in {folder}: no base backup, no WAL and no pg_dump file. To "
                f"load a pg_dump file kept elsewhere, name it: `restore FILE`. Nothing was changed."
            )
        return latest.path

    def report_migrations(self) -> None:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            self.stdout.write(
                f"The backup predates {len(pending)} of this code's migrations: `serve` applies "
                f"them at start, or run `manage.py migrate`."
            )
