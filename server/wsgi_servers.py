"""The production WSGI servers (gunicorn, granian) and the options both are started with.

`serve` runs the project's application on them; the benchmark's raw reference handler runs on
the same code, so both are measured on the same server.
"""

import os

import gunicorn.http.wsgi
from django.conf import settings
from django.utils.module_loading import import_string
from gunicorn.app.base import BaseApplication

from core import env
from server import metrics_port


class ServerConfigError(ValueError):
    """The server settings cannot be used; the message says which and why."""


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


class _ResponseWithoutServer(gunicorn.http.wsgi.Response):
    """gunicorn's HTTP/1 response without its `Server: gunicorn` line.

    gunicorn has no setting for that header, and the application cannot take it off: gunicorn
    writes it itself. Setting `gunicorn.SERVER` does not help either: gunicorn.http.wsgi copied
    the name when it was imported, and an empty value still sends the header.
    """

    def default_headers(self):
        return [line for line in super().default_headers() if not line.startswith("Server:")]


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
    gunicorn.http.wsgi.Response = _ResponseWithoutServer  # what gunicorn.http.wsgi.create makes
    ProductionServer(gunicorn_options, import_string(target.replace(":", "."))).run()


def _run_granian(target: str, options: dict) -> None:
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError:  # an install without the project's locked dependencies
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


def worker_class() -> str:
    """gthread, reading each request in full before a thread serves it, unless told not to."""
    if env.get_bool("WEB_BUFFER_REQUESTS", True):
        return "server.buffering_worker.BufferingThreadWorker"
    return "gthread"  # slow clients can then hold every thread: only behind a buffering proxy


def server_options() -> dict:
    return {
        # gunicorn: its worker is the one that bounds slow clients (server/buffering_worker.py);
        # granian reads bodies in the serving thread, so behind a buffering proxy only.
        "server": env.get_str("WEB_SERVER", "gunicorn"),
        "bind": f"{settings.LISTEN_HOST}:{settings.PORT}",
        "workers": env.get_int("WEB_CONCURRENCY", default_workers()),
        "worker_class": worker_class(),
        "threads": env.get_int("WEB_THREADS", 8),
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        # No request-line limit of gunicorn's own (its refusal is an HTML 414): Django refuses a
        # URL over MAX_URL_BYTES with a JSON 414 (core.middleware.UrlLengthLimitMiddleware). The
        # headers, request line included, stay bounded by limit_request_field_size and _fields.
        "limit_request_line": 0,
        "accesslog": "-" if env.get_bool("ACCESS_LOG", True) else None,
        "errorlog": "-",
        "preload_app": True,
        "proc_name": "keepnotes",
        # gunicorn's runtime control socket is not used, and needs a writable home folder.
        "control_socket_disable": True,
        # The request id on the access line, JSON like the app's logs (observability/).
        "logger_class": "observability.access_log.GunicornLogger",
        "child_exit": metrics_port.worker_exited,  # the metrics port forgets a dead worker
    }
