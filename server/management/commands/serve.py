from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups.startup import start_protection
from pgembedded.errors import EmbeddedPostgresError
from server import metrics_port
from server.startup import StartupError, prepare, supervise_database
from server.task_workers import TaskWorkers
from server.wsgi_servers import ServerConfigError, run_server, server_options


class Command(BaseCommand):
    help = "Start everything: the database (embedded unless configured), migrations, the server."

    def handle(self, *args, **options):
        if settings.METRICS_PORT:
            metrics_port.prepare_multiprocess_folder()  # before anything counts
        try:
            prepare(say=self.stdout.write)
        except (StartupError, EmbeddedPostgresError) as error:
            raise CommandError(str(error)) from None
        # What runs as long as `serve` does: not part of the one-shot `prepare`.
        start_protection(say=self.stdout.write)
        if settings.METRICS_PORT and metrics_port.start(
            settings.LISTEN_HOST, settings.METRICS_PORT
        ):
            self.stdout.write(
                f"Metrics on http://{settings.LISTEN_HOST}:{settings.METRICS_PORT}/metrics"
            )
        self.stdout.write(f"Serving on http://{settings.LISTEN_HOST}:{settings.PORT}/")
        # "config.wsgi.application" -> "config.wsgi:application", the form both servers take.
        module, _, name = settings.WSGI_APPLICATION.rpartition(".")
        # After the start sequence (migrated, no connection inherited), before the web server.
        task_workers = TaskWorkers(settings.TASK_WORKERS, say=self.stdout.write)
        task_workers.start()
        supervisor = supervise_database(say=self.stdout.write)  # None: nothing to supervise
        try:
            run_server(f"{module}:{name}", server_options())
        except ServerConfigError as error:
            raise CommandError(str(error)) from None
        finally:
            task_workers.stop()  # before the embedded database is left (atexit)
            if supervisor is not None:
                supervisor.stop()
                if supervisor.failure:  # it stopped the server: exit 1, saying why
                    raise CommandError(supervisor.failure)
