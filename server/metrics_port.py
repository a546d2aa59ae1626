"""`/metrics` on its own port (METRICS_PORT, on LISTEN_HOST), served by the `serve` process.

Every worker process writes its counts to files in a private folder (prometheus-client's
multiprocess mode, PROMETHEUS_MULTIPROC_DIR); a thread in the serve process (granian's main
process) adds them up at each scrape and asks the database and the disks for the rest. The
application's own port has no /metrics: metrics are never public by accident.

What asks the database is asked at most once every CACHE_SECONDS, by one scrape at a time: any
number of scrapers cost one set of queries, on the PostgreSQL collector's one connection. With
METRICS_TOKEN, a scrape without the token is refused before anything is asked.
"""

import atexit
import hmac
import ipaddress
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

from backups.dumps.catalogue import latest_backup, list_backups
from backups.folder import default_folder
from core.files import nearest_existing
from core.processes import process_alive

log = logging.getLogger(__name__)

# Prometheus scrapes every 15 s or more; two of them (high availability) a few seconds apart
# share one answer.
CACHE_SECONDS = 5


def prepare_multiprocess_folder() -> Path:
    """A fresh private folder for the workers' metric files, named in PROMETHEUS_MULTIPROC_DIR.

    Called before anything imports observability.metrics: prometheus-client decides at import
    whether values go to files. Files of an earlier run would add old counts to the new ones.
    """
    if "observability.metrics" in sys.modules:
        raise RuntimeError("observability.metrics was imported before the multiprocess folder")
    folder = Path(tempfile.mkdtemp(prefix="keepnotes-metrics-"))
    atexit.register(_remove_in_owner, folder, os.getpid())
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # in case prometheus_client is already loaded
    return folder


def _remove_in_owner(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked worker, which inherits this exit handler
        shutil.rmtree(folder, ignore_errors=True)


class WorkersCollector:
    """The workers' files, read live; first, the live gauges of workers no longer running are
    forgotten (their counters still count): granian replaces a worker without telling."""

    def __init__(self, folder: str):
        from prometheus_client import multiprocess

        self.folder = folder
        self.files = multiprocess.MultiProcessCollector(None, path=folder)

    def collect(self):
        from prometheus_client import multiprocess

        for path in Path(self.folder).glob("gauge_live*_*.db"):
            pid = int(path.stem.rpartition("_")[2])
            if not process_alive(pid):
                multiprocess.mark_process_dead(pid, self.folder)
        return self.files.collect()


# -- The data promise: how much could be lost right now ----------------------------------------
# Each source yields metric families at scrape time. Another safeguard (WAL archiving, an
# object-store backup) adds its own function to DATA_PROMISE_SOURCES.


def base_backup_age():
    """When the newest backup was taken: a dump in BACKUP_DIR, or the archive's base backup."""
    from prometheus_client.core import GaugeMetricFamily

    newest = latest_backup(default_folder())
    family = GaugeMetricFamily(
        "keepnotes_backup_last_success_timestamp_seconds",
        "When the newest complete backup was taken (Unix time), by kind: a `dump` file, or "
        "a base backup of the WAL archive; absent while there is none.",
        labels=["kind"],
    )
    if newest is not None:
        family.add_metric(["dump"], newest.taken.timestamp())
    entry = _archive_entry()
    if entry is not None and entry.get("last_base_backup"):
        ended = datetime.fromisoformat(entry["last_base_backup"])
        family.add_metric(["base"], ended.timestamp())
    yield family
    count = GaugeMetricFamily(
        "keepnotes_backups", "Complete backups kept in the backups folder.", labels=["kind"]
    )
    count.add_metric(["dump"], len(list_backups(default_folder())))
    yield count


def free_space():
    """Free and total bytes where the data and the backups are."""
    from prometheus_client.core import GaugeMetricFamily

    free = GaugeMetricFamily(
        "keepnotes_disk_free_bytes", "Free bytes on the file system.", labels=["volume"]
    )
    size = GaugeMetricFamily(
        "keepnotes_disk_size_bytes", "Size of the file system.", labels=["volume"]
    )
    places = {"backups": default_folder()}
    if settings.EMBEDDED_DATABASE:
        places["data"] = settings.DATA_DIR
    for volume, place in places.items():
        existing = nearest_existing(place)
        if existing is None:
            continue
        usage = shutil.disk_usage(existing)
        free.add_metric([volume], usage.free)
        size.add_metric([volume], usage.total)
    yield free
    yield size


def replica_lag():
    """Each read replica's lag as the router sees it; -1 when it cannot be reached."""
    from prometheus_client.core import GaugeMetricFamily

    from core.replicas import replicas_report

    lag = GaugeMetricFamily(
        "keepnotes_replica_lag_seconds",
        "How far each read replica is behind the primary (-1: unreachable).",
        labels=["replica"],
    )
    for alias, report in replicas_report().items():
        lag.add_metric([alias], report.get("lag_seconds", -1))
    yield lag
    yield GaugeMetricFamily(
        "keepnotes_replica_max_lag_seconds",
        "REPLICA_MAX_LAG_SECONDS: a replica further behind gets no reads.",
        settings.REPLICA_MAX_LAG_SECONDS,
    )


def readiness():
    """What /readyz answers, as 1 or 0."""
    from prometheus_client.core import GaugeMetricFamily

    from core.health import readiness as ready_now

    try:
        ready, _ = ready_now()
    except DatabaseError:
        ready = False
    yield GaugeMetricFamily("keepnotes_ready", "1 when /readyz answers 200.", 1 if ready else 0)


def _archive_entry() -> dict | None:
    """/readyz's archive entry (backups.continuous.archive_status); None without an archive."""
    from backups.continuous.archive_status import readiness_entry

    entry = readiness_entry()
    return None if entry is None or entry.get("state") in ("off", "unknown") else entry


def continuous_archive():
    """The WAL archive streamed by serve (backups.continuous.archive_status), when there is one."""
    from prometheus_client.core import GaugeMetricFamily

    entry = _archive_entry()
    if entry is None:
        return
    yield GaugeMetricFamily(
        "keepnotes_archive_streaming",
        "1 while WAL is streamed to the archive as written.",
        1 if entry["state"] == "streaming" else 0,
    )
    if entry.get("rpo_seconds") is not None:
        yield GaugeMetricFamily(
            "keepnotes_archive_rpo_seconds",
            "What losing the disk now would cost: seconds of writes not yet in the archive.",
            entry["rpo_seconds"],
        )
    if entry.get("lag_bytes") is not None:
        yield GaugeMetricFamily(
            "keepnotes_archive_lag_bytes",
            "WAL written and not yet in the archive.",
            entry["lag_bytes"],
        )
    if entry.get("offsite_waiting_files") is not None:
        yield GaugeMetricFamily(
            "keepnotes_archive_offsite_waiting_files",
            "Protected files in the local archive not yet copied off-site (BACKUP_URL).",
            entry["offsite_waiting_files"],
        )
    yield GaugeMetricFamily(
        "keepnotes_archive_error",
        "1 when the archive's last attempt left an error.",
        1 if entry.get("error") else 0,
    )


def task_queue():
    """The background tasks' queue (tasks/), as `status` shows it: a stuck queue is work lost
    to the user even when no data is."""
    from prometheus_client.core import GaugeMetricFamily

    from tasks.selectors import queue_summary

    summary = queue_summary()
    tasks = GaugeMetricFamily(
        "keepnotes_tasks", "Background tasks by state, in the queue table.", labels=["state"]
    )
    for state in ("queued", "running", "failed"):
        tasks.add_metric([state], getattr(summary, state))
    yield tasks
    age = summary.oldest_queued_age
    yield GaugeMetricFamily(
        "keepnotes_task_oldest_queued_age_seconds",
        "How long the oldest queued task has waited for a worker (0: none queued).",
        age.total_seconds() if age is not None else 0,
    )


DATA_PROMISE_SOURCES: list[Callable[[], Iterable]] = [
    base_backup_age,
    continuous_archive,
    free_space,
    replica_lag,
    readiness,
    task_queue,
]


class DataPromiseCollector:
    def collect(self):
        started = time.monotonic()
        try:
            for source in DATA_PROMISE_SOURCES:
                try:
                    yield from source()
                except Exception:  # one broken source must not hide the others
                    log.exception("metrics source %s failed", source.__name__)
        finally:
            connections.close_all()  # this thread's only: nothing for a forked worker to inherit
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(
            "keepnotes_scrape_collect_seconds",
            "Time the metrics port took to gather the data promise.",
            time.monotonic() - started,
        )


class CachedCollector:
    """The families of `collectors`, gathered by one scrape at a time, kept CACHE_SECONDS.

    Scrapes that arrive while one gathers wait for it and answer with what it found.
    """

    def __init__(self, *collectors, seconds: float = CACHE_SECONDS):
        self.collectors = collectors
        self.seconds = seconds
        self._lock = threading.Lock()
        self._families: list = []
        self._gathered = float("-inf")

    def collect(self):
        with self._lock:
            if time.monotonic() - self._gathered >= self.seconds:
                self._families = [family for each in self.collectors for family in each.collect()]
                self._gathered = time.monotonic()
            return list(self._families)


def _make_server(host: str, port: int, app):
    """prometheus-client's threading WSGI server, with a listen backlog for bursts of scrapes."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    class Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # socketserver's default is 5: a burst of scrapers found connections refused.
        request_queue_size = socket.SOMAXCONN

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            pass  # a line per scrape says nothing

    return make_server(host, port, app, Server, handler_class=QuietHandler)


def requiring_token(app, token: str):
    """`app`, answering 401 to a request without `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    def guarded(wsgi_environ, start_response):  # not named `environ`: no setting is read here
        given = wsgi_environ.get("HTTP_AUTHORIZATION", "").encode("latin-1")
        if hmac.compare_digest(given, expected):
            return app(wsgi_environ, start_response)
        start_response(
            "401 Unauthorized",
            [("WWW-Authenticate", 'Bearer realm="metrics"'), ("Content-Type", "text/plain")],
        )
        return [b"The metrics port needs its bearer token (METRICS_TOKEN).\n"]

    return guarded


def start(host: str, port: int):
    """Serve /metrics on host:port in a daemon thread; None when the port cannot be had.

    A busy port is logged, not fatal: the application still serves, and Prometheus's `up`
    alert says the metrics are missing.
    """
    from prometheus_client import CollectorRegistry, make_wsgi_app

    from observability.postgres import PostgresCollector

    registry = CollectorRegistry()
    # The workers' files: read live, no database.
    registry.register(WorkersCollector(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    registry.register(CachedCollector(PostgresCollector(), DataPromiseCollector()))
    app = make_wsgi_app(registry)
    if settings.METRICS_TOKEN:
        app = requiring_token(app, settings.METRICS_TOKEN)
    elif not _loopback(host):
        log.warning(
            "the metrics port %s:%s answers anyone who reaches it: set METRICS_TOKEN, or keep "
            "the port on a network only Prometheus shares",
            host,
            port,
        )
    try:
        server = _make_server(host, port, app)
    except OSError as error:
        log.error("metrics port %s:%s not served: %s", host, port, error)
        return None
    threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()
    return server


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
