"""Is the database there, and is its schema current? Cheap enough to ask on every probe."""

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from core.errors import first_line

from . import replicas

_migrated = False  # once true it stays true: nothing un-applies migrations under a running app


def migrations_applied() -> bool:
    global _migrated
    if not _migrated:
        executor = MigrationExecutor(connection)
        _migrated = not executor.migration_plan(executor.loader.graph.leaf_nodes())
    return _migrated


def readiness() -> tuple[bool, dict]:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        migrated = migrations_applied()
    except DatabaseError as error:
        return False, {"database": "unavailable", "error": first_line(error)}
    if not migrated:
        return False, {"database": "ok", "migrations": "pending"}
    checks = {"database": "ok", "migrations": "applied"}
    if settings.DATABASE_REPLICA_ALIASES:
        # Reported, never fatal: a lagging or missing replica only sends reads to the primary.
        checks["replicas"] = replicas.replicas_report()
    return True, checks


def database_description() -> dict:
    """What the landing page shows: where the data lives and which server holds it."""
    where = (
        f"embedded PostgreSQL in {settings.DATA_DIR / 'postgres'}"
        if settings.EMBEDDED_DATABASE
        else f"{connection.settings_dict['HOST']}:{connection.settings_dict['PORT']}"
        f"/{connection.settings_dict['NAME']}"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
    except DatabaseError as error:
        return {"connected": False, "where": where, "error": first_line(error)}
    return {"connected": True, "where": where, "version": version}
