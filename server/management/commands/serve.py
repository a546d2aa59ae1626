from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups.continuous.startup import start_protection
from pgembedded.errors import EmbeddedPostgresError
from server import front_door, metrics_port
from server.startup import StartupError, prepare, supervise_database
from server.task_workers import TaskWorkers
from server.wsgi_servers import ServerConfigError, run_server, server_options


class Command(BaseCommand):
    help = "Start everything: the database (embedded unless configured), migrations, the server."

    def handle(self, *args, **options):
        # Before anything starts: a second `serve` must not get as far as touching the data.
        if front_door.port_in_use(settings.LISTEN_HOST, settings.PORT):
            raise CommandError(
                f"Port {settings.PORT} on {settings.LISTEN_HOST} is in use by another program "
                f"(another `serve`?). Stop it, or choose another port with PORT=."
            )
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
        # After the start sequence (migrated, no connection inherited), before the web server.
        task_workers = TaskWorkers(settings.TASK_WORKERS, say=self.stdout.write)
        task_workers.start()
        supervisor = supervise_database(say=self.stdout.write)  # None: nothing to supervise
        front = None
        try:
            if settings.WEB_FRONT == "nginx":
                front = front_door.FrontDoor(front_door.front_config(), say=self.stdout.write)
                front.start()
                target, app_socket = "server.front_wsgi:application", front.app_socket
            else:
                # "config.wsgi.application" -> "config.wsgi:application", the form granian takes.
                module, _, name = settings.WSGI_APPLICATION.rpartition(".")
                target, app_socket = f"{module}:{name}", None
            self.stdout.write(f"Serving on http://{settings.LISTEN_HOST}:{settings.PORT}/")
            run_server(target, server_options(app_socket))
        except (ServerConfigError, front_door.FrontDoorError) as error:
            raise CommandError(str(error)) from None
        finally:
            if front is not None:
                front.stop()
            task_workers.stop()  # before the embedded database is left (atexit)
            if supervisor is not None:
                supervisor.stop()
                if supervisor.failure:  # it stopped the server: exit 1, saying why
                    raise CommandError(supervisor.failure)
