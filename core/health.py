"""Is the database there, and is its schema current? Cheap enough to ask on every probe."""

import json
import logging
import time
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest

from core.database import base as database_backend
from core.errors import first_line
from core.files import usage_per_file_system

from . import replicas

_migrated = False  # once true it stays true: nothing un-applies migrations under a running app
logger = logging.getLogger(__name__)
DISK_WARN_EVERY_SECONDS = 60
_disk_warned_at = float("-inf")

# Entries `/readyz` reports and never fails on, registered by the apps that own them (core
# imports no app): name -> a function returning a JSON-able dict, or None for nothing to report.
# The backups app adds `archive`.
REPORTED_CHECKS: dict = {}


def migrations_applied() -> bool:
    global _migrated
    if not _migrated:
        executor = MigrationExecutor(connection)
        _migrated = not executor.migration_plan(executor.loader.graph.leaf_nodes())
    return _migrated


def shows_details(request: HttpRequest) -> bool:
    """Internals (addresses, versions, error text): for DEBUG and for staff logged into the admin.

    An error line can name the database user and internal addresses, so anonymous visitors get
    the status only. The probes answer before the session middleware runs (core.middleware), so
    the session is looked up here when there is one; a database that cannot look it up shows none.
    """
    if settings.DEBUG:
        return True
    try:
        user = getattr(request, "user", None)
        if user is None:
            key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
            if not key:
                return False
            request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
            user = get_user(request)
        return bool(user.is_active and user.is_staff)
    except DatabaseError:
        return False


def without_details(checks: dict) -> dict:
    """The same report with every error text left out (also inside the replicas' reports)."""
    return {
        key: without_details(value) if isinstance(value, dict) else value
        for key, value in checks.items()
        if key != "error"
    }


def readiness() -> tuple[bool, dict]:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        migrated = migrations_applied()
    except DatabaseError as error:
        return False, {"database": supervisor_state() or "unavailable", "error": first_line(error)}
    if state := supervisor_state():
        # A connection can outlive its postmaster for a moment: the supervisor knows better.
        return False, {"database": state}
    if not migrated:
        return False, {"database": "ok", "migrations": "pending"}
    # Reported, never fatal: reads still work, and the warning is for before the disk is full.
    checks: dict[str, object] = {"database": "ok", "migrations": "applied", "disk": disk_check()}
    if "," in str(connection.settings_dict["HOST"]):
        # Several hosts (a high-availability cluster): which one is the primary, and since when.
        checks["primary"] = database_backend.primary()
    if settings.DATABASE_REPLICA_ALIASES:
        # Reported, never fatal: a lagging or missing replica only sends reads to the primary.
        checks["replicas"] = replicas.replicas_report()
    for name, report in REPORTED_CHECKS.items():
        try:
            entry = report()
        except Exception as error:  # reported, never fatal: the probe still answers
            entry = {"state": "unknown", "error": first_line(error)}
        if entry is not None:  # None: nothing to report (yet)
            checks[name] = entry
    return True, checks


def supervisor_state() -> str | None:
    """ "restarting" or "failed" while `serve` deals with a dead embedded PostgreSQL, else None."""
    path = settings.EMBEDDED_SUPERVISOR_STATE_FILE
    try:
        return json.loads(path.read_text())["state"] if path else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def low_disk_space(places: list[Path] | None = None) -> list[str]:
    """A warning for each file system under `places` with less than DISK_FREE_WARN_BYTES free.

    By default the data folder (when the database is embedded) and the backups folder: when the
    data disk fills, PostgreSQL refuses writes (and may stop), and a backup cannot be written.
    """
    if places is None:
        places = [settings.DATA_DIR] if settings.EMBEDDED_DATABASE else []
        places.append(settings.BACKUP_DIR)
    usages = usage_per_file_system({str(place): place for place in places})
    warnings = []
    for place, usage in usages.items():  # one warning per file system
        if usage.free < settings.DISK_FREE_WARN_BYTES:
            warnings.append(
                f"only {usage.free / 1e6:.1f} MB free where {place} is "
                f"(DISK_FREE_WARN_BYTES is {settings.DISK_FREE_WARN_BYTES / 1e6:.0f} MB)"
            )
    return warnings


def disk_check() -> str:
    """ "ok" or "low" for /readyz, logging the warnings at most once a minute per process."""
    global _disk_warned_at
    warnings = low_disk_space()
    if warnings and time.monotonic() - _disk_warned_at > DISK_WARN_EVERY_SECONDS:
        _disk_warned_at = time.monotonic()
        for warning in warnings:
            logger.warning("Disk space low: %s", warning)
    return "low" if warnings else "ok"


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
