import contextlib
import os
import signal
import threading

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from backups.continuous.archive import Archive
from backups.continuous.configured_server import ConfiguredServer
from backups.continuous.offsite import from_settings
from backups.continuous.protection import Protection
from backups.database import describe_database
from backups.folder import default_folder
from core.errors import first_line
from pgembedded.backend.base import embedded_server
from pgembedded.roles import PostgresServer


class Command(BaseCommand):
    help = (
        "Continuous protection until SIGTERM or Ctrl-C: the WAL streamed into the archive, "
        "base backups on schedule, off-site copies with BACKUP_URL. `serve` runs it by itself "
        "for the embedded database; the compose `backup` service runs it for the `db` service "
        "(a configured server: its role needs REPLICATION and a pg_hba `replication` line). "
        "One process at a time protects an archive."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ready-fd",
            type=int,
            help="write one line to this file descriptor once every write from then on can be "
            "restored (after the first base backup of a new history), then close it; `serve` "
            "waits for it before it reports ready",
        )

    def handle(self, *args, **options):
        ready = Ready(options["ready_fd"])
        stopping = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stopping.set())
        if not settings.BACKUP_PROTECTION:
            ready.say("off")
            # Idle rather than exit: compose's `restart: unless-stopped` would start it again.
            self.stdout.write(
                "Continuous backups are off (BACKUP_PROTECTION=off): nothing is archived. "
                "Waiting to be stopped."
            )
            while not stopping.wait(1.0):
                pass
            return
        archive = Archive(default_folder())
        server: PostgresServer
        if settings.EMBEDDED_DATABASE:
            server = embedded_server()
            server.ensure_running()
        else:
            server = ConfiguredServer(connection.settings_dict, pgdata=archive.folder)
        protection = Protection(
            server=server,
            archive=archive,
            base_every=settings.BACKUP_BASE_EVERY,
            keep_days=settings.BACKUP_RETENTION,
            warn=lambda message: self.stderr.write(message),
            offsite=from_settings(),
            offsite_every=settings.BACKUP_OFFSITE_SECONDS,
        )
        try:
            claimed = protection.claim()
        except psycopg.Error as error:
            ready.say("failed")
            raise CommandError(
                f"Cannot start continuous backups of {describe_database(connection)}: "
                f"{first_line(error, 'no answer')}"
            ) from None
        if not claimed:
            ready.say("elsewhere")
            self.stdout.write(f"Continuous backups into {archive.folder}: run by another process")
            return
        offsite = f", shipped to {protection.offsite.describe()}" if protection.offsite else ""
        first = " (a first base backup now)" if protection.needs_base else ""
        self.stdout.write(
            f"Continuous backups of {describe_database(connection)} into {archive.folder}: WAL "
            f"streamed as written{offsite}{first}"
        )
        protection.start()
        while not protection.settled.wait(0.2) and protection.is_alive():
            if stopping.is_set():
                break
        ready.say("failed, see the log" if protection.needs_base else "protected")
        while not stopping.wait(1.0) and protection.is_alive():
            pass
        protection.stop()


class Ready:
    """The line `serve` waits for on --ready-fd (nothing without one): written once."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def say(self, state: str) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError), os.fdopen(self.fd, "w") as pipe:
            pipe.write(state + "\n")
        self.fd = None
