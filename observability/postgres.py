"""PostgreSQL's own health, read at each scrape: the few statistics views that matter here.

A few queries rather than postgres_exporter: the embedded runtime has no place to run a second
program, the queries need no extra role or password (the app's own connection), and an
operator who runs postgres_exporter already (CloudNativePG ships one) loses nothing.

They run on one connection of the collector's own, kept between scrapes and used by one scrape
at a time: scrapes arrive on threads of their own, and Django's connection per thread opened one
connection per scrape, as many at once as scrapers. It is the app's role (the superuser of the
embedded server): a role with only pg_monitor would need creating and a password of its own in
every runtime, for queries that read statistics and change nothing.
"""

import os
import threading

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from core.database import base as database_backend

DATABASE = """
    SELECT xact_commit, xact_rollback, deadlocks, conflicts, temp_bytes, blks_hit, blks_read,
           pg_database_size(current_database())
    FROM pg_stat_database WHERE datname = current_database()
"""
CONNECTIONS = """
    SELECT COALESCE(state, 'unknown'), count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend' GROUP BY 1
"""
ARCHIVER = """
    SELECT current_setting('archive_mode'), archived_count, failed_count,
           EXTRACT(EPOCH FROM now() - last_archived_time)::float8,
           EXTRACT(EPOCH FROM last_failed_time)::float8,
           EXTRACT(EPOCH FROM last_archived_time)::float8
    FROM pg_stat_archiver
"""
# Standbys streaming from this server; the columns are NULL without the pg_monitor role.
REPLICATION = """
    SELECT COALESCE(application_name, ''), COALESCE(client_addr::text, 'local'),
           COALESCE(EXTRACT(EPOCH FROM replay_lag)::float8, 0),
           COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8
    FROM pg_stat_replication
"""


class PostgresCollector:
    """keepnotes_postgres_*: asked of the default database at each scrape, on one connection."""

    def __init__(self):
        # Reentrant: connecting may start the embedded server, whose subprocess runs the fork
        # hook below in this same thread.
        self._lock = threading.RLock()
        self._database: BaseDatabaseWrapper | None = None
        # The serve process forks workers (and programs): a child must not inherit the socket,
        # whose libpq state it would share, and would end the session for us when it exits.
        os.register_at_fork(before=self.close_before_fork, after_in_parent=self._lock.release)
        os.register_at_fork(after_in_child=self._lock.release)

    def collect(self):
        up = GaugeMetricFamily(
            "keepnotes_postgres_up", "1 when the metrics port reached PostgreSQL."
        )
        with self._lock:
            try:
                with self._connection().cursor() as cursor:
                    families = list(_families(cursor))
            except DatabaseError:
                if self._database is not None:  # None: the backend itself failed to load
                    self._database.close()  # connect again at the next scrape
                up.add_metric([], 0)
                yield up
                return
        up.add_metric([], 1)
        yield up
        yield from families
        if (primary := database_backend.primary()) is not None:
            yield from _primary_families(primary)

    def _connection(self) -> BaseDatabaseWrapper:
        """The collector's own DatabaseWrapper for `default`: not Django's per-thread one."""
        if self._database is None:
            configured = connections.settings[DEFAULT_DB_ALIAS]
            options = {key: value for key, value in configured["OPTIONS"].items() if key != "pool"}
            settings_dict = {**configured, "OPTIONS": options}  # one connection, not a pool
            backend = load_backend(settings_dict["ENGINE"])
            self._database = backend.DatabaseWrapper(settings_dict, DEFAULT_DB_ALIAS)
            self._database.inc_thread_sharing()  # each scrape is another thread, one at a time
        if self._database.connection is not None and not self._database.is_usable():
            self._database.close()  # the server restarted or ended the session: a new one
        return self._database

    def close_before_fork(self) -> None:
        """Close the connection and hold it closed until the fork is done (os.register_at_fork)."""
        self._lock.acquire()
        if self._database is not None:
            self._database.close()


def _primary_families(primary: dict):
    """Which server the collector found taking writes, and since when: a failover shows here."""
    host = GaugeMetricFamily(
        "keepnotes_postgres_primary",
        "1 for the server the app connected to (the primary, with several hosts).",
        labels=["host"],
    )
    host.add_metric([primary["host"]], 1)
    yield host
    yield GaugeMetricFamily(
        "keepnotes_postgres_primary_since_timestamp_seconds",
        "When the app first connected to that server (Unix time): the last failover, if any.",
        primary["since"],
    )


def _families(cursor):
    cursor.execute(DATABASE)
    commits, rollbacks, deadlocks, conflicts, temp_bytes, hit, read, size = cursor.fetchone()
    for name, value, text in (
        ("xact_commit", commits, "Transactions committed."),
        ("xact_rollback", rollbacks, "Transactions rolled back."),
        ("deadlocks", deadlocks, "Deadlocks detected."),
        ("conflicts", conflicts, "Queries cancelled on a standby by recovery conflicts."),
        ("temp_bytes", temp_bytes, "Bytes written to temporary files (work_mem too small)."),
        ("blks_hit", hit, "Blocks found in shared buffers."),
        ("blks_read", read, "Blocks read from disk."),
    ):
        yield CounterMetricFamily(f"keepnotes_postgres_{name}", text, value=value)
    yield GaugeMetricFamily("keepnotes_postgres_database_bytes", "Size of the database.", size)

    cursor.execute(CONNECTIONS)
    connections = GaugeMetricFamily(
        "keepnotes_postgres_connections",
        "Client connections to this database by state (active: running a query now).",
        labels=["state"],
    )
    for state, count in cursor.fetchall():
        connections.add_metric([state], count)
    yield connections
    cursor.execute("SELECT current_setting('max_connections')::int")
    yield GaugeMetricFamily(
        "keepnotes_postgres_max_connections", "PostgreSQL's max_connections.", cursor.fetchone()[0]
    )

    cursor.execute(ARCHIVER)
    mode, archived, failed, age, last_failed, last_archived = cursor.fetchone()
    yield GaugeMetricFamily(
        "keepnotes_postgres_archiving",
        "1 when archive_mode is on: WAL is copied somewhere as it is written.",
        1 if mode in ("on", "always") else 0,
    )
    yield CounterMetricFamily("keepnotes_postgres_archived_wal", "WAL files archived.", archived)
    yield CounterMetricFamily(
        "keepnotes_postgres_archive_failures", "Attempts to archive a WAL file that failed.", failed
    )
    if last_archived is not None:
        yield GaugeMetricFamily(
            "keepnotes_postgres_last_archived_timestamp_seconds",
            "When the last WAL file was archived (Unix time).",
            last_archived,
        )
        yield GaugeMetricFamily(
            "keepnotes_postgres_last_archive_age_seconds",
            "Seconds since the last WAL file was archived.",
            age,
        )
    if last_failed is not None:
        yield GaugeMetricFamily(
            "keepnotes_postgres_last_archive_failure_timestamp_seconds",
            "When archiving last failed (Unix time).",
            last_failed,
        )

    cursor.execute(REPLICATION)
    lag = GaugeMetricFamily(
        "keepnotes_postgres_replication_lag_seconds",
        "Replay lag of each standby streaming from this server, as the primary sees it.",
        labels=["application_name", "client_addr"],
    )
    behind = GaugeMetricFamily(
        "keepnotes_postgres_replication_lag_bytes",
        "WAL written here and not yet replayed by each standby.",
        labels=["application_name", "client_addr"],
    )
    for application, client, seconds, nbytes in cursor.fetchall():
        lag.add_metric([application, client], seconds)
        behind.add_metric([application, client], nbytes)
    yield lag
    yield behind
