import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.database import connect
from backups.errors import BackupError
from backups.tools import child_environment, tool
from core.files import folder_size, human_size
from pgembedded.backend.base import embedded_server
from pgembedded.programs import MAJOR_VERSION
from pgembedded.upgrade import UpgradeError, upgrade


class Command(BaseCommand):
    help = (
        f"Upgrade the embedded data folder from an older PostgreSQL major version to "
        f"{MAJOR_VERSION} with pg_upgrade, on a copy: the old data is kept beside it as "
        f"DATA_DIR/postgres-<old version>. Needs the old version's programs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--old-bindir",
            type=Path,
            help="folder with the old version's programs (postgres, pg_ctl, ...); found by "
            "itself in the usual places (/usr/lib/postgresql/<version>/bin, Homebrew, ...)",
        )

    def handle(self, *args, **options):
        if not settings.EMBEDDED_DATABASE:
            raise CommandError(
                "A database is configured (DATABASE_URL or DB_HOST): upgrade that server with "
                "its own tools, or move the data with `backup` and `restore` (README, Data "
                "safety). This command upgrades the embedded data folder only."
            )
        server = embedded_server()
        if server.is_initialised() and server.data_version() == MAJOR_VERSION:
            self.stdout.write(
                f"{server.pgdata} already holds PostgreSQL {MAJOR_VERSION} data: nothing to do."
            )
            return
        try:
            kept = upgrade(server, old_bindir=options["old_bindir"], say=self.stdout.write)
        except UpgradeError as error:
            raise CommandError(str(error)) from None

        # Start the new server and rebuild the statistics pg_upgrade does not carry over.
        try:
            connect(connection)
        except BackupError as error:
            raise CommandError(str(error)) from None
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        analyzed = subprocess.run(
            [
                str(tool("vacuumdb")),
                "--all",
                "--analyze-in-stages",
                "--missing-stats-only",
                "--no-password",
                "--quiet",
            ],
            env=child_environment(connection.settings_dict),
            capture_output=True,
            text=True,
            check=False,
        )
        if analyzed.returncode != 0:
            self.stderr.write(
                f"vacuumdb --analyze failed (harmless, run it later): {analyzed.stderr}"
            )
        self.stdout.write(
            f"Upgraded: {server.pgdata} now holds PostgreSQL {version} data. The old data is "
            f"kept untouched in {kept} ({human_size(folder_size(kept))}): delete "
            f"that folder once the app works (make a `backup` first)."
        )
