"""The one start sequence, shared by the local command, the container and Kubernetes.

`prepare()` runs these steps, in this order:

1. resolve the database (configured, or start/attach to the embedded one);
2. wait for it, with backoff, up to DB_WAIT_TIMEOUT;
3. check that the configured servers fit its max_connections (server/connection_budget.py);
4. migrate under a PostgreSQL advisory lock, so replicas starting at once migrate exactly once;
5. ensure the superuser from DJANGO_SUPERUSER_* (idempotent, no default password);
6. check that the protected file store (and its archive) can be written (filestore/checks.py);

then closes every connection, so that the server workers forked next inherit none. `serve`
then supervises the embedded database (`supervise_database()`) and serves.
"""

import os
import signal
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import OperationalError, connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
from django.db.migrations.executor import MigrationExecutor

from accounts.services import superuser_ensure
from core import env
from core.errors import first_line
from core.say import Say
from filestore.checks import problems as file_store_problems
from pgembedded.backend.base import embedded_server
from pgembedded.supervisor import Supervisor
from server.connection_budget import check_connection_budget

# Any constant shared by every process of this project; "kn" "migr" in ASCII.
MIGRATION_LOCK_ID = 0x6B6E_6D69_6772


class StartupError(RuntimeError):
    """Start-up cannot go on; the message says why and what to do."""


def prepare(say: Say = print) -> None:
    started = time.monotonic()
    resolve_database(say)
    wait_for_database(settings.DB_WAIT_TIMEOUT, say)
    check_connection_budget(say)
    migrate_under_lock(say)
    ensure_superuser(say)
    check_file_store()
    # Server workers are forked after this: none may inherit an open connection, pooled ones
    # included (workers sharing a pool's sockets would read each other's answers).
    connections.close_all()
    for database in connections.all(initialized_only=True):
        if isinstance(database, PostgresWrapper) and database.pool:
            database.close_pool()
    say(f"Ready to serve ({time.monotonic() - started:.2f} s)")


def check_file_store() -> None:
    found = file_store_problems()
    if found:
        raise StartupError(
            " ".join(found) + " Set PROTECTED_FILES_DIR or FILES_URL (docs/configuration.md)."
        )


def resolve_database(say: Say) -> None:
    if settings.EMBEDDED_DATABASE:
        embedded_server().ensure_running(say)
    else:
        where = connection.settings_dict
        say(f"Using PostgreSQL at {where['HOST']}:{where['PORT']}/{where['NAME']}")


def wait_for_database(timeout: float, say: Say) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            connection.ensure_connection()
            return
        except OperationalError as error:
            last_error = first_line(error)
        if time.monotonic() + delay > deadline:
            raise StartupError(
                f"The database did not answer within {timeout:g} s ({last_error}). "
                f"Check DATABASE_URL / DB_HOST, or raise DB_WAIT_TIMEOUT."
            )
        say(f"Waiting for the database: {last_error}")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def migrate_under_lock(say: Say) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if not plan:
            say("Database schema is up to date")
            return
        say(f"Applying {len(plan)} migrations")
        call_command("migrate", interactive=False, verbosity=0)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])


def ensure_superuser(say: Say) -> None:
    username = env.get_str("DJANGO_SUPERUSER_USERNAME")
    if not username:
        return
    try:
        outcome = superuser_ensure(
            username=username,
            password=env.get_str("DJANGO_SUPERUSER_PASSWORD"),
            email=env.get_str("DJANGO_SUPERUSER_EMAIL"),
            reset_password=env.get_bool("DJANGO_SUPERUSER_RESET_PASSWORD", False),
        )
    except ValidationError as error:
        weak = " ".join(error.messages)
        raise StartupError(f"DJANGO_SUPERUSER_PASSWORD is too weak: {weak}") from None
    say(outcome.capitalize())


def supervise_database(say: Say) -> Supervisor | None:
    """Restart the embedded PostgreSQL should it die while serving (pgembedded/supervisor.py).

    Giving up stops the server the way SIGTERM does; `serve` then exits with the reason.
    """
    if not (settings.EMBEDDED_DATABASE and settings.EMBEDDED_SUPERVISE):
        return None
    supervisor = Supervisor(
        embedded_server(),
        say=say,
        give_up=lambda reason: os.kill(os.getpid(), signal.SIGTERM),
        max_restarts=settings.EMBEDDED_RESTART_LIMIT,
        window_seconds=settings.EMBEDDED_RESTART_WINDOW_SECONDS,
    )
    supervisor.start()
    return supervisor
