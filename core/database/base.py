"""Django's PostgreSQL backend, with a check before reuse that costs no round trip.

Kept connections are checked before each request reuses them (CONN_HEALTH_CHECKS), so that a
restarted database fails no request. Django's check is a `SELECT 1`: one more round trip on
every request, a third of all the queries a read makes (docs/performance.md). This one asks
the socket instead. Between requests a connection is idle and PostgreSQL sends it nothing;
when the server stops, restarts or ends the session, it sends a FATAL message and closes the
connection, so the socket turns readable. Readable means "do not reuse": anything else the
server might send unasked (a notice, a changed parameter) costs a reconnect, never an error.

A link that died without a word (a host gone, a network cut) looks idle to both checks
alike; `connect_timeout` and TCP keep-alives are the defence there.
"""

import select
import threading
import time

from django.db import DEFAULT_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

# The server this process last connected to, and since when (Unix time). With several hosts in
# DATABASE_URL, libpq keeps the one that takes writes, so this is the primary as this process
# found it: /readyz and the metrics report it, and a failover shows as a new host and time.
_primary: dict = {}
_primary_lock = threading.Lock()


def primary() -> dict | None:
    """{"host": "address:port", "since": unix time} of the last server connected to, or None."""
    with _primary_lock:
        return dict(_primary) or None


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.alias != DEFAULT_DB_ALIAS:
            return connection  # a read replica's (same backend): not where writes go
        host = f"{connection.info.host}:{connection.info.port}"
        with _primary_lock:
            if _primary.get("host") != host:
                _primary.update(host=host, since=time.time())
        return connection

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        # Inside a failed transaction a query fails too, as `SELECT 1` would tell.
        if connection.info.transaction_status == TransactionStatus.INERROR:
            return False
        poller = select.poll()
        try:
            poller.register(connection.fileno(), select.POLLIN)
        except (OSError, ValueError):
            return False
        return not poller.poll(0)
