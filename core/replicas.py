"""Read replicas: reads go to a replica, writes to the primary, a request that wrote reads its
own writes, and a replica too far behind is skipped.

Installed only when DATABASE_REPLICA_URLS is set (config/settings.py). Where a request reads
from is decided once, by ReadYourWritesMiddleware (below):

- a GET, HEAD or OPTIONS request reads from one replica, picked for the whole request, so a page
  is one snapshot rather than a mix of replicas;
- any other method reads from the primary from its start: a PATCH reads the row it then saves,
  and a stale copy would overwrite newer data;
- so does a request from a client that wrote within the last REPLICA_PIN_SECONDS (a cookie);
- the first write of a request sends its remaining reads to the primary as well;
- outside a request (the start sequence, management commands, the shell) everything goes to the
  primary: nothing changes for code that never asked for a replica.
"""

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest

from core.errors import first_line


@dataclass
class Routing:
    """Where the current request reads from (None: the primary), and whether it wrote."""

    replica: str | None = None
    wrote: bool = False


_routing: ContextVar[Routing | None] = ContextVar("keepnotes_db_routing", default=None)


@contextmanager
def routing(replica: str | None) -> Iterator[Routing]:
    """Route the queries made inside this block; the Routing says afterwards if they wrote."""
    state = Routing(replica=replica)
    token = _routing.set(state)
    try:
        yield state
    finally:
        _routing.reset(token)


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints) -> str:
        state = _routing.get()
        if state is None or state.replica is None:
            return DEFAULT_DB_ALIAS
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS  # inside a transaction, read what it has written
        return state.replica

    def db_for_write(self, model, **hints) -> str:
        state = _routing.get()
        if state is not None:
            state.wrote = True
            state.replica = None
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # every alias holds the same data

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS  # replicas follow the primary's schema by replication


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
        status = ReplicaStatus(lag_seconds=None, error=first_line(error))
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
