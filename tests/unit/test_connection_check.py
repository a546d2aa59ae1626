"""The check before a kept connection is reused: no query, and it still sees a dead session."""

import time

import pytest
from django.db import connection, connections

from core.database import base as database_base


@pytest.fixture
def kept():
    """A connection of its own (not the test's transaction), closed afterwards."""
    alias = "default"
    wrapper = connections[alias].__class__(connections[alias].settings_dict, alias)
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def backend_pid(wrapper) -> int:
    with wrapper.connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_live_idle_connection_is_usable_and_the_check_sends_no_query(kept):
    pid = backend_pid(kept)
    # Django's own check runs `SELECT 1`, which would move the session's query_start.
    with connection.cursor() as cursor:
        cursor.execute("SELECT query_start FROM pg_stat_activity WHERE pid = %s", [pid])
        (before,) = cursor.fetchone()
        assert kept.is_usable()
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # read afresh, inside one transaction
        cursor.execute("SELECT query_start FROM pg_stat_activity WHERE pid = %s", [pid])
        (after,) = cursor.fetchone()
    assert after == before


@pytest.mark.django_db
def test_a_session_the_server_ended_is_not_reused(kept):
    pid = backend_pid(kept)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while kept.is_usable():  # the FATAL message and the close arrive a moment later
        assert time.monotonic() < deadline, "a terminated session still looked usable"
        time.sleep(0.01)
    # What Django does before a request's first query on a kept connection (CONN_HEALTH_CHECKS).
    kept.health_check_enabled, kept.health_check_done = True, False
    kept.close_if_health_check_failed()
    assert kept.connection is None, "Django drops a connection that fails the check"


@pytest.mark.django_db
def test_a_closed_connection_is_not_usable(kept):
    kept.connection.close()
    assert not kept.is_usable()


@pytest.mark.django_db
def test_a_connection_inside_a_failed_transaction_is_not_usable(kept):
    kept.connection.autocommit = False
    with pytest.raises(Exception, match="division by zero"), kept.connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")
    assert not kept.is_usable(), "its next query would fail: Django's SELECT 1 says so too"
    kept.connection.rollback()
    assert kept.is_usable()


@pytest.mark.django_db
def test_only_the_default_database_is_reported_as_the_primary(monkeypatch):
    """A read replica uses the same backend: connecting to it must not make it the primary."""
    elsewhere = {"host": "elsewhere:5432", "since": 1.0}
    monkeypatch.setattr(database_base, "_primary", dict(elsewhere))
    settings_dict = connections["default"].settings_dict

    for alias in ("replica_1", "default"):
        wrapper = database_base.DatabaseWrapper(settings_dict, alias)
        # The backend's own step, without Django's connection_created receivers (which look the
        # alias up in DATABASES, where the tests configure no replica).
        wrapper.get_new_connection(wrapper.get_connection_params()).close()
        if alias != "default":
            assert database_base.primary() == elsewhere

    assert database_base.primary()["host"] != "elsewhere:5432"
