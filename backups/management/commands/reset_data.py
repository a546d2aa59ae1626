import os
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups.dumps.catalogue import latest_backup, list_backups
from backups.folder import default_folder
from core.files import folder_size, human_size
from pgembedded.backend.base import embedded_server
from pgembedded.postgres import EmbeddedPostgres


class Command(BaseCommand):
    help = (
        "Delete the embedded PostgreSQL database in DATA_DIR, so that the next start begins "
        "empty. Lists exactly what goes, and asks you to type the folder's name. Backups and "
        "the secret key are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="do not prompt: refuse unless --yes-delete-database is given too",
        )
        parser.add_argument(
            "--yes-delete-database",
            action="store_true",
            help="confirm without the prompt (for scripts): there is no undo",
        )

    def handle(self, *args, **options):
        if not settings.EMBEDDED_DATABASE:
            raise CommandError(
                "A database is configured (DATABASE_URL or DB_HOST): there is no local data "
                "folder to reset, and this command never touches a configured database."
            )
        server = embedded_server()
        data_dir = server.data_dir
        doomed = self.doomed_paths(server)
        if not doomed:
            self.stdout.write(f"Nothing to delete: there is no embedded database in {data_dir}.")
            return
        self.refuse_while_in_use(server)

        self.stdout.write(f"This deletes the embedded PostgreSQL database in {data_dir}:")
        for path in doomed:
            kind = "/" if path.is_dir() else ""
            size = human_size(folder_size(path))
            self.stdout.write(f"  {path}{kind}  ({size})")
        kept = self.kept_paths(data_dir)
        if kept:
            self.stdout.write("Kept:")
            for path, what in kept:
                self.stdout.write(f"  {path}  ({what})")
        latest = latest_backup(default_folder())
        if latest:
            self.stdout.write(f"The newest backup is {latest.path}; `restore` brings it back.")
        else:
            self.stdout.write("There is no backup: make one first with `manage.py backup`.")

        if not self.confirmed(options, data_dir):
            raise CommandError("Not confirmed: nothing was deleted.")

        # Held while deleting: no process can start the server or attach meanwhile.
        with server.start_lock():
            self.refuse_while_in_use(server)
            for path in doomed:
                delete(path, data_folder=path == server.pgdata)
        self.stdout.write(
            f"Deleted. The next `serve` (or any command that needs the database) creates an "
            f"empty one in {server.pgdata}."
        )

    def doomed_paths(self, server: EmbeddedPostgres) -> list[Path]:
        data_dir = server.data_dir
        candidates = [
            server.pgdata,
            server.password_file,
            server.log_file,
            server.socket_dir,
            # Leftovers of an interrupted initdb, reset or upgrade.
            data_dir / "postgres.initdb",
            data_dir / "postgres.initdb.password",
            data_dir / "postgres.upgrading",
            *sorted(data_dir.glob("postgres.deleting-*")),
        ]
        return [path for path in candidates if path.exists()]

    def kept_paths(self, data_dir: Path) -> list[tuple[Path, str]]:
        kept = []
        folder = default_folder()
        backups = list_backups(folder)
        if folder.exists():
            kept.append((folder, f"{len(backups)} backups"))
        if (data_dir / "secret_key").exists():
            kept.append((data_dir / "secret_key", "Django's signing key"))
        for old in sorted(data_dir.glob("postgres-[0-9]*")):
            kept.append((old, "the data of an older PostgreSQL, kept by upgrade_data"))
        return kept

    def refuse_while_in_use(self, server: EmbeddedPostgres) -> None:
        # Stopping it here would pull the database from under `serve` mid-request; the user
        # stops those processes, knowing which they are.
        if busy := server.in_use():
            raise CommandError(
                f"{busy.capitalize()}, for `serve` or another manage.py command. Stop them "
                f"first (Ctrl-C), then run reset_data again. Nothing was deleted."
            )

    def confirmed(self, options, data_dir: Path) -> bool:
        if options["yes_delete_database"]:
            return True
        if not options["interactive"]:
            raise CommandError(
                "Refusing to delete without confirmation: pass --yes-delete-database with "
                "--noinput. Nothing was deleted."
            )
        try:
            answer = input(f"Type the data folder's name ({data_dir.name}) to delete it: ")
        except EOFError:
            return False
        return answer.strip() == data_dir.name


def delete(path: Path, *, data_folder: bool = False) -> None:
    if data_folder:
        # Renamed first: an interruption leaves a clearly named leftover (deleted by the next
        # reset_data), never a half data folder that PostgreSQL would try to start from.
        doomed = path.with_name(f"postgres.deleting-{os.getpid()}")
        path.rename(doomed)
        path = doomed
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
