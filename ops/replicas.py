"""Read replicas and connection budgets: which replica a request reads from, how far behind each
replica is, and whether the configured servers fit PostgreSQL's max_connections.

The routing rules themselves are in config/db_router.py.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest

from config import env
from config.db_router import routing

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PIN_COOKIE = "db_primary_until"
# How long a replica's lag reading is reused before it is asked again (per process), and how
# long one that did not answer is left alone: neither requests nor probes wait on it meanwhile.
CHECK_INTERVAL_SECONDS = 2.0
RETRY_UNAVAILABLE_SECONDS = 10.0

# Time since the last replayed transaction, but only while received WAL still waits to be
# replayed: a caught-up standby of an idle primary is 0 s behind, however old its last commit.
LAG_QUERY = """
    SELECT CASE
        WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
        ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
    END::float8
"""


@dataclass(frozen=True)
class ReplicaStatus:
    lag_seconds: float | None  # None: unreachable
    error: str = ""

    @property
    def usable(self) -> bool:
        return self.lag_seconds is not None and self.lag_seconds <= settings.REPLICA_MAX_LAG_SECONDS

    def as_dict(self) -> dict:
        if self.lag_seconds is None:
            return {"status": "unavailable", "error": self.error}
        status = "ok" if self.usable else "lagging"
        return {"status": status, "lag_seconds": round(self.lag_seconds, 3)}


_checked: dict[str, tuple[float, ReplicaStatus]] = {}


def replica_status(alias: str) -> ReplicaStatus:
    """Ask the replica now how far behind it is; remembered for the routing decisions."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(LAG_QUERY)
            status = ReplicaStatus(lag_seconds=max(0.0, cursor.fetchone()[0]))
    except DatabaseError as error:
        connections[alias].close()  # the next check reconnects rather than reuse a dead link
        status = ReplicaStatus(lag_seconds=None, error=str(error).strip().splitlines()[0])
    _checked[alias] = (time.monotonic(), status)
    return status


def recent_status(alias: str) -> ReplicaStatus:
    """The last reading while it is fresh enough, else a new one."""
    checked_at, status = _checked.get(alias, (float("-inf"), None))
    if status is not None:
        answered = status.lag_seconds is not None
        fresh_for = CHECK_INTERVAL_SECONDS if answered else RETRY_UNAVAILABLE_SECONDS
        if time.monotonic() - checked_at <= fresh_for:
            return status
    return replica_status(alias)


def replicas_report() -> dict:
    """Every replica's lag (at most CHECK_INTERVAL_SECONDS old), for /readyz."""
    return {alias: recent_status(alias).as_dict() for alias in settings.DATABASE_REPLICA_ALIASES}


def usable_replicas() -> list[str]:
    """Replicas that answered and were no more than REPLICA_MAX_LAG_SECONDS behind lately."""
    return [alias for alias in settings.DATABASE_REPLICA_ALIASES if recent_status(alias).usable]


class ReadYourWritesMiddleware:
    """Choose where this request reads from; after a write, keep this client on the primary.

    The window is a cookie holding its own end time: it costs no shared state, so it works
    whichever server process or pod the client's next request reaches.
    """

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        replica = None
        if request.method in SAFE_METHODS and not self.pinned(request):
            candidates = usable_replicas()
            # Spreading load, not a secret: any random source will do.
            replica = random.choice(candidates) if candidates else None  # noqa: S311
        with routing(replica) as state:
            response = self.get_response(request)
        if state.wrote and settings.REPLICA_PIN_SECONDS > 0:
            response.set_cookie(
                PIN_COOKIE,
                f"{time.time() + settings.REPLICA_PIN_SECONDS:.3f}",
                max_age=settings.REPLICA_PIN_SECONDS,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response

    @staticmethod
    def pinned(request: HttpRequest) -> bool:
        """A cookie from a recent write; one claiming a longer window than ours is ignored."""
        try:
            until = float(request.COOKIES.get(PIN_COOKIE, ""))
        except ValueError:
            return False
        now = time.time()
        return now < until <= now + settings.REPLICA_PIN_SECONDS


# -- Connection budget -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionBudget:
    """The most connections the app may hold on one PostgreSQL server."""

    instances: int  # APP_MAX_INSTANCES: pods at the HPA's maximum, compose replicas
    workers: int  # WEB_CONCURRENCY: gunicorn processes per instance
    per_worker: int  # WEB_THREADS (each keeps its connection), or the pool's max_size
    per_worker_source: str = "WEB_THREADS"

    @property
    def total(self) -> int:
        return self.instances * self.workers * self.per_worker

    def explain(self) -> str:
        return (
            f"{self.total} connections (APP_MAX_INSTANCES {self.instances} x "
            f"WEB_CONCURRENCY {self.workers} x {self.per_worker_source} {self.per_worker})"
        )


def connection_budget() -> ConnectionBudget:
    # Lazily: the serve command builds the WSGI application when imported.
    from ops.management.commands.serve import server_options

    options = server_options()
    pool = settings.DATABASES[DEFAULT_DB_ALIAS]["OPTIONS"].get("pool")
    instances = env.get_int("APP_MAX_INSTANCES", 1)
    if pool:
        pool = {} if pool is True else pool
        # Django's pool is per process; psycopg_pool's default is max_size = min_size = 4.
        size = pool.get("max_size") or pool.get("min_size", 4)
        return ConnectionBudget(instances, options["workers"], size, "pool max_size")
    # Persistent connections (CONN_MAX_AGE): each thread keeps its own.
    return ConnectionBudget(instances, options["workers"], options["threads"])


def server_allows(alias: str) -> tuple[int, str]:
    """Connections an ordinary role may open on that server, and how that was worked out."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int,"
            " current_setting('reserved_connections')::int"
        )
        maximum, superuser_reserved, reserved = cursor.fetchone()
    return maximum - superuser_reserved - reserved, (
        f"max_connections {maximum} - {superuser_reserved + reserved} reserved"
    )


def check_connection_budget(say: Callable[[str], None]) -> None:
    """Warn, at start, when the app could open more connections than a server accepts."""
    if env.get_bool("DB_BEHIND_POOLER", False):
        say("Connection budget: the pooler in front of PostgreSQL holds the server connections")
        return
    budget = connection_budget()
    for alias in [DEFAULT_DB_ALIAS, *settings.DATABASE_REPLICA_ALIASES]:
        name = "the primary" if alias == DEFAULT_DB_ALIAS else alias
        try:
            allowed, how = server_allows(alias)
        except DatabaseError as error:
            say(f"Connection budget: cannot ask {name} ({str(error).strip().splitlines()[0]})")
            continue
        if budget.total > allowed:
            say(
                f"Warning: the app may open {budget.explain()} on {name}, which accepts "
                f"{allowed} ({how}). Lower WEB_CONCURRENCY or WEB_THREADS, raise "
                f"max_connections, or put PgBouncer in front (README: connection budgets)."
            )
        else:
            say(f"Connection budget: {budget.explain()} of {allowed} on {name} ({how})")
