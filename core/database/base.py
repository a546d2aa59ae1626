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

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
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
