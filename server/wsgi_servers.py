"""The production WSGI server (granian) and the options it is started with.

`serve` runs the project's application on it, behind the front door (server/front_door.py) on
a Unix socket, or straight on PORT with WEB_FRONT=none; the benchmark's raw reference handler
runs on the same code, so both are measured on the same server.
"""

import os
from pathlib import Path
from typing import Any

from django.conf import settings

from core import env


class ServerConfigError(ValueError):
    """The server settings cannot be used; the message says which and why."""


def default_workers() -> int:
    """One worker process per CPU this process may use (each runs WEB_THREADS threads)."""
    return max(2, os.process_cpu_count() or 1)


def server_options(app_socket: Path | None = None) -> dict:
    """granian's options: on `app_socket` behind the front, else on LISTEN_HOST:PORT."""
    return {
        "server": "granian",
        "app_socket": app_socket,
        "host": settings.LISTEN_HOST,
        "port": settings.PORT,
        "workers": env.get_int("WEB_CONCURRENCY", default_workers()),
        "threads": env.get_int("WEB_THREADS", 8),
        # A worker whose memory grew past this is replaced by a new one, after it has answered
        # what it holds (granian's resource monitor samples it every WEB_WORKER_RSS_SECONDS).
        "max_rss_mib": env.get_int("WEB_WORKER_MAX_RSS_MIB", 1024),
        "rss_sample_seconds": env.get_int("WEB_WORKER_RSS_SECONDS", 30),
        "access_log": settings.ACCESS_LOG and app_socket is None,  # else the front logs
    }


def run_server(target: str, options: dict) -> None:
    """Serve the WSGI application at `target` ("module:name") as `options` say, until stopped."""
    try:
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces
    except ImportError:  # an install without the project's locked dependencies
        raise ServerConfigError("granian is not installed: run `uv sync`.") from None
    where: dict[str, Any]  # granian's keyword arguments for a socket, or an address
    if options["app_socket"] is not None:
        where = {"uds": Path(options["app_socket"]), "uds_permissions": 0o600}
    else:
        where = {"address": options["host"].strip("[]"), "port": options["port"]}
    server = Granian(
        target,
        **where,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        workers=options["workers"],
        blocking_threads=options["threads"],
        log_access=options["access_log"],
        log_dictconfig=granian_logging(),
        respawn_failed_workers=True,
        workers_max_rss=options["max_rss_mib"],
        rss_sample_interval=options["rss_sample_seconds"],
        # A worker told to stop while still starting can wait forever (granian 2.8): cap it.
        workers_kill_timeout=10,
    )
    try:
        server.serve()
    except SystemExit as stopped:
        # A stop signal sent to the whole process group (Ctrl-C in a terminal, systemd's
        # default) reaches granian's workers too. On a busy machine one may exit before granian
        # has told it to, which granian 2.8 counts as a crash and exits 1 for, though the stop
        # was clean.
        if not (server.interrupt_signal and stopped.code == 1):
            raise


def granian_logging() -> dict:
    """The app's LOGGING, with granian's own loggers on its handler (granian replaces the rest)."""
    loggers = {name: {"handlers": ["console"], "propagate": False} for name in GRANIAN_LOGGERS}
    return {**settings.LOGGING, "loggers": {**settings.LOGGING.get("loggers", {}), **loggers}}


GRANIAN_LOGGERS = ("_granian", "granian.access")
