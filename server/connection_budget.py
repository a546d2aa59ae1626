"""Whether the configured servers fit PostgreSQL's max_connections, checked at every start."""

from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from core import env
from core.errors import first_line
from core.say import Say
from server.wsgi_servers import server_options


@dataclass(frozen=True)
class ConnectionBudget:
    """The most connections the app may hold on one PostgreSQL server."""

    instances: int  # APP_MAX_INSTANCES: pods at the HPA's maximum, compose replicas
    workers: int  # WEB_CONCURRENCY: app server processes per instance
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


def check_connection_budget(say: Say) -> None:
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
            say(f"Connection budget: cannot ask {name} ({first_line(error)})")
            continue
        if budget.total > allowed:
            say(
                f"Warning: the app may open {budget.explain()} on {name}, which accepts "
                f"{allowed} ({how}). Lower WEB_CONCURRENCY or WEB_THREADS, raise "
                f"max_connections, or put PgBouncer in front (docs/scaling.md, connection budgets)."
            )
        else:
            say(f"Connection budget: {budget.explain()} of {allowed} on {name} ({how})")
