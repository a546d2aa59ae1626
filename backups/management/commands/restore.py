from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.continuous.archive import Archive
from backups.continuous.branches import branches
from backups.continuous.mounted_data_folder import MountedDataFolder
from backups.continuous.offsite import from_settings
from backups.continuous.offsite_restore import OffSiteSource
from backups.continuous.point_in_time import (
    LocalSource,
    NamedBase,
    RestoreSource,
    no_base_backup,
    parse_target,
    restore_to,
)
from backups.deprecated_forms import say_deprecated
from backups.dumps.catalogue import latest_backup
from backups.errors import BackupError
from backups.folder import default_folder
from core import env
from core.files import folder_size as folder_bytes
from core.files import human_size
from pgembedded.backend.base import embedded_server
from pgembedded.roles import DataFolderServer


class Command(BaseCommand):
    help = (
        "Restore the data folder to a point in time from the continuous archive (--to, "
        "--latest; --list shows what it can restore). A pg_dump file made by `dump` is loaded "
        "by `load` instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file", nargs="?", type=Path, help="deprecated: `load FILE` loads a pg_dump file"
        )
        parser.add_argument(
            "--to",
            metavar="TIME",
            help="restore the embedded data folder as it was at this ISO-8601 time (UTC when "
            "no offset is given), from the continuous archive",
        )
        parser.add_argument(
            "--latest",
            action="store_true",
            help="restore the newest recoverable point of the continuous archive",
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
            help="the continuous archive (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the data folder when it holds a database (it is moved aside, never "
            "deleted)",
        )
        parser.add_argument(
            "--no-backup-first",
            action="store_true",
            help="deprecated, with FILE: see `load --help`",
        )

    def handle(self, *args, **options):
        archive = Archive((options["dir"] or default_folder()).resolve())
        try:
            if options["list"]:
                return self.list(archive)
            if options["file"] and options["to"] is None and not options["database"]:
                say_deprecated(self.stderr, "restore FILE", "load FILE")
                return self.load(options)
            if options["database"] and options["to"] is None and not options["latest"]:
                raise CommandError("--database goes with --latest or --to. Nothing was changed.")
            if options["latest"] and not (archive.base_backups() or settings.BACKUP_URL):
                if archive.newest_wal_time():
                    # Not "no pg_dump file": the archive is there, and can restore nothing.
                    raise no_base_backup(archive)
                if latest_backup(archive.folder) is not None:
                    say_deprecated(
                        self.stderr, "restore --latest (of a pg_dump file)", "load --latest"
                    )
                    return self.load(options)
                raise CommandError(
                    f"Nothing to restore in {archive.folder}: no base backup, no WAL and no "
                    f"pg_dump file. To load a pg_dump file kept elsewhere: `manage.py load "
                    f"FILE`. Nothing was changed."
                )
            return self.restore_point(options, archive)
        except BackupError as error:
            raise CommandError(str(error)) from None

    def load(self, options) -> None:
        """The deprecated forms that loaded a pg_dump file: `load`, with the same options."""
        call_command(
            "load",
            *([str(options["file"])] if options["file"] else []),
            latest=options["latest"],
            dir=options["dir"],
            force=options["force"],
            no_backup_first=options["no_backup_first"],
            verbosity=options["verbosity"],
            stdout=self.stdout,
            stderr=self.stderr,
        )

    def restore_point(self, options, archive: Archive) -> None:
        if options["file"] or (options["to"] is None) == (not options["latest"]):
            raise CommandError(
                "Pass --to TIME or --latest (--list shows what the archive can restore). To "
                "load a pg_dump file: `manage.py load FILE`. Nothing was changed."
            )
        server = self.server_to_restore()
        target = parse_target(options["to"]) if options["to"] is not None else None
        # The local archive when it has a base backup; else the off-site store, if configured.
        offsite = from_settings()
        if offsite is not None and not archive.base_backups():
            if options["database"]:
                raise CommandError(
                    "--database chooses within the local archive, which has no base backup; the "
                    "off-site store holds one database per BACKUP_URL."
                )
            source = OffSiteSource(offsite)
            self.restore_from(source=source, server=server, target=target, force=options["force"])
        else:
            local = LocalSource(
                archive, database=options["database"], offsite=offsite, say=self.stdout.write
            )
            self.restore_from(source=local, server=server, target=target, force=options["force"])

    def restore_from[Base: NamedBase](
        self,
        *,
        source: RestoreSource[Base],
        server: DataFolderServer,
        target: datetime | None,
        force: bool,
    ) -> None:
        done = restore_to(
            server=server, source=source, target=target, force=force, say=self.stdout.write
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

    def server_to_restore(self) -> DataFolderServer:
        """The embedded server, or the data folder of a configured one mounted at $PGDATA (the
        compose `restore` service mounts the db volume there)."""
        if settings.EMBEDDED_DATABASE:
            return embedded_server()
        pgdata = env.get_str("PGDATA")
        if not pgdata:
            raise CommandError(
                "--to and --latest rebuild a data folder, and this configured server's is not "
                "mounted here (PGDATA is unset). On compose: `docker compose stop`, then "
                "`docker compose run --rm restore python manage.py restore --latest` "
                "(docs/data-safety.md#docker-compose). Elsewhere the server is restored by its own "
                "tools, or load a pg_dump file with `manage.py load FILE`."
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
