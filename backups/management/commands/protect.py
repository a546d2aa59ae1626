import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.archive import Archive
from backups.catalogue import default_folder
from backups.offsite import from_settings
from backups.protection import Protection


class Command(BaseCommand):
    help = (
        "Continuous protection of the embedded database until SIGTERM or Ctrl-C: the WAL "
        "streamed into the archive, base backups on schedule, off-site copies with BACKUP_URL. "
        "`serve` runs it by itself; one process at a time protects a data folder."
    )

    def handle(self, *args, **options):
        if not settings.EMBEDDED_DATABASE:
            raise CommandError("`protect` streams the embedded database's WAL: none is in use.")
        server = connection.embedded_server()
        server.ensure_running()
        archive = Archive(default_folder())
        protection = Protection(
            server=server,
            archive=archive,
            base_every=settings.BACKUP_BASE_EVERY,
            keep_days=settings.BACKUP_RETENTION,
            warn=lambda message: self.stderr.write(message),
            offsite=from_settings(),
            offsite_every=settings.BACKUP_OFFSITE_SECONDS,
        )
        if not protection.claim():
            self.stdout.write(f"Continuous backups into {archive.folder}: run by another process")
            return
        offsite = f", shipped to {protection.offsite.describe()}" if protection.offsite else ""
        first = " (a first base backup now)" if protection.needs_base else ""
        self.stdout.write(
            f"Continuous backups into {archive.folder}: WAL streamed as written{offsite}{first}"
        )
        stopping = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stopping.set())
        protection.start()
        while not stopping.wait(1.0) and protection.is_alive():
            pass
        protection.stop()
