"""Reads go to a replica, writes to the primary, and a request that wrote reads its own writes.

Installed only when DATABASE_REPLICA_URLS is set (config/settings.py). Where a request reads
from is decided once, by ops.replicas.ReadYourWritesMiddleware:

- a GET, HEAD or OPTIONS request reads from one replica, picked for the whole request, so a page
  is one snapshot rather than a mix of replicas;
- any other method reads from the primary from its start: a PATCH reads the row it then saves,
  and a stale copy would overwrite newer data;
- so does a request from a client that wrote within the last REPLICA_PIN_SECONDS (a cookie);
- the first write of a request sends its remaining reads to the primary as well;
- outside a request (the start sequence, management commands, the shell) everything goes to the
  primary: nothing changes for code that never asked for a replica.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections


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
