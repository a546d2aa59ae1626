"""The production WSGI servers (gunicorn, granian) and the options both are started with.

`serve` runs the project's application on them; the benchmark's raw reference handler runs on
the same code, so both are measured on the same server.
"""

import importlib.util
import os

from django.conf import settings
from django.utils.module_loading import import_string
from gunicorn.app.base import BaseApplication

from core import env


class ServerConfigError(ValueError):
    """The server settings cannot be used; the message says which and why."""


def default_server() -> str:
    """granian when installed (less CPU per request than gunicorn: docs/performance.md)."""
    return "granian" if importlib.util.find_spec("granian") else "gunicorn"


def default_workers() -> int:
    """One worker process per CPU this process may use (each runs WEB_THREADS threads)."""
    return max(2, os.process_cpu_count() or 1)


class ProductionServer(BaseApplication):
    """gunicorn, run inside this process so that stopping it can stop the embedded database."""

    def __init__(self, options: dict, app):
        self.options = options
        self.app = app
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.app


def run_server(target: str, options: dict) -> None:
    """Serve the WSGI application at `target` ("module:name") as `options` say.

    The benchmark's raw reference is served by this too, so both run on the same server.
    """
    if options["server"] == "granian":
        _run_granian(target, options)
        return
    if options["server"] != "gunicorn":
        raise ServerConfigError(f"WEB_SERVER is {options['server']!r}: use gunicorn or granian.")
    gunicorn_options = {key: value for key, value in options.items() if key != "server"}
    ProductionServer(gunicorn_options, import_string(target.replace(":", "."))).run()


def _run_granian(target: str, options: dict) -> None:
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError:
        raise ServerConfigError("WEB_SERVER=granian, but granian is not installed.") from None
    host, _, port = options["bind"].rpartition(":")
    host = host.strip("[]")  # an IPv6 address, bracketed in a URL
    Granian(
        target,
        address=host,
        port=int(port),
        interface=Interfaces.WSGI,
        workers=options["workers"],
        blocking_threads=options["threads"],
        log_access=options["accesslog"] is not None,
        # A worker told to stop while still starting can wait forever (granian 2.8): cap it.
        workers_kill_timeout=10,
    ).serve()


def server_options() -> dict:
    return {
        "server": env.get_str("WEB_SERVER", default_server()),
        "bind": f"{settings.LISTEN_HOST}:{settings.PORT}",
        "workers": env.get_int("WEB_CONCURRENCY", default_workers()),
        "worker_class": "gthread",
        "threads": env.get_int("WEB_THREADS", 8),
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
