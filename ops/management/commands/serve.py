import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from gunicorn.app.base import BaseApplication

from config import env
from config.wsgi import application
from ops.embedded_postgres import EmbeddedPostgresError
from ops.startup import StartupError, prepare


def default_workers() -> int:
    return max(2, (os.cpu_count() or 1) * 2)


class ProductionServer(BaseApplication):
    """gunicorn, run inside this process so that stopping it can stop the embedded database."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return application


def server_options() -> dict:
    return {
        "bind": f"{settings.LISTEN_HOST}:{settings.PORT}",
        "workers": env.get_int("WEB_CONCURRENCY", default_workers()),
        "worker_class": "gthread",
        "threads": env.get_int("WEB_THREADS", 4),
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": "-" if env.get_bool("ACCESS_LOG", True) else None,
        "errorlog": "-",
        "preload_app": True,
        "proc_name": "keepnotes",
        # gunicorn's runtime control socket is not used, and needs a writable home folder.
        "control_socket_disable": True,
    }


class Command(BaseCommand):
    help = "Start everything: the database (embedded unless configured), migrations, the server."

    def handle(self, *args, **options):
        try:
            prepare(say=self.stdout.write)
        except (StartupError, EmbeddedPostgresError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Serving on http://{settings.LISTEN_HOST}:{settings.PORT}/")
        ProductionServer(server_options()).run()
