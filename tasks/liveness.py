"""Tasks whose worker died are queued again.

django-tasks-db marks a task RUNNING when a worker claims it, and only that worker ever moves
it on: a worker killed mid-task (SIGKILL, a lost node, PostgreSQL itself killed) leaves it
RUNNING forever. So each worker holds a session-level advisory lock named after its id for as
long as it lives; PostgreSQL drops the lock when the worker's connection ends, however it
ends. A RUNNING task whose worker's lock can be taken has no live worker, and is queued again
(the task must be safe to run again: notes/imports.py is).

A task cut off by the database going away (a failover, a restart, its session ended) is queued
again too, by its own worker once the database answers (tasks/worker.py), rather than failed:
it did nothing wrong, and the next run finds only what is left to do.
"""

import logging

from django.db import InterfaceError, OperationalError, connection, transaction
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from .periodic import HOUSEKEEPING_QUEUE

logger = logging.getLogger(__name__)

# Any constant of this project, within int4 for the two-key form: "kntw" in ASCII.
LIVENESS_LOCK_CLASS = 0x6B6E_7477
# admin_shutdown (a fast stop, a demotion, pg_terminate_backend), crash_shutdown,
# cannot_connect_now (starting or recovering); class 08 is "connection exception".
SERVER_GONE = {"57P01", "57P02", "57P03"}


def hold_worker_lock(worker_id: str) -> bool:
    """Take this worker's lock on this thread's connection; True when held."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LIVENESS_LOCK_CLASS, worker_id]
        )
        return cursor.fetchone()[0]


def worker_is_alive(worker_id: str) -> bool:
    """Whether the worker's connection still holds its lock (asked from another connection)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LIVENESS_LOCK_CLASS, worker_id]
        )
        if not cursor.fetchone()[0]:
            return True
        cursor.execute(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", [LIVENESS_LOCK_CLASS, worker_id]
        )
        return False


def lost_database(error: BaseException) -> bool:
    """Whether `error` is the database going away under a task, rather than something the task
    did: the connection broke or could not be made (no SQLSTATE: libpq's own error), or the
    server ended the session or refused one. Not a deadlock or a timeout: those are the task's
    own, and fail it as before.

    Told by the error, not by the connection: by the time a caller asks, Django may already
    have connected again, to the new primary.
    """
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    state = getattr(error.__cause__, "sqlstate", None)
    return state is None or state.startswith("08") or state in SERVER_GONE


def requeue_orphans(*, except_worker: str) -> int:
    """Queue again every RUNNING task whose worker is gone; returns how many."""
    requeued = 0
    running = DBTaskResult.objects.running().values_list("id", "worker_ids")
    for task_id, worker_ids in running:
        owner = worker_ids[-1] if worker_ids else ""
        if owner == except_worker or worker_is_alive(owner):
            continue
        with transaction.atomic():
            requeued += DBTaskResult.objects.filter(
                id=task_id, status=TaskResultStatus.RUNNING
            ).update(status=TaskResultStatus.READY, started_at=None)
        logger.warning(
            "Task %s was running on worker %s, which is gone: queued again", task_id, owner
        )
    return requeued


def requeue_own(*, worker_id: str, housekeeping: bool = False) -> int:
    """Queue again the tasks RUNNING under this worker's id: its loop's, or (`housekeeping`)
    those of the housekeeping queue, which its housekeeper thread runs meanwhile; how many."""
    running = DBTaskResult.objects.running()
    if housekeeping:
        running = running.filter(queue_name=HOUSEKEEPING_QUEUE)
    else:
        running = running.exclude(queue_name=HOUSEKEEPING_QUEUE)
    ids = running.values_list("id", "worker_ids")
    mine = [task_id for task_id, worker_ids in ids if worker_ids[-1:] == [worker_id]]
    requeued = DBTaskResult.objects.filter(id__in=mine, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.READY, started_at=None
    )
    for task_id in mine:
        logger.warning("Task %s was cut off by the database going away: queued again", task_id)
    return requeued
