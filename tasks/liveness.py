"""Tasks whose worker died are queued again.

django-tasks-db marks a task RUNNING when a worker claims it, and only that worker ever moves
it on: a worker killed mid-task (SIGKILL, a lost node, PostgreSQL itself killed) leaves it
RUNNING forever. So each worker holds a session-level advisory lock named after its id for as
long as it lives; PostgreSQL drops the lock when the worker's connection ends, however it
ends. A RUNNING task whose worker's lock can be taken has no live worker, and is queued again
(the task must be safe to run again: notes/imports.py is).
"""

import logging

from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

logger = logging.getLogger(__name__)

# Any constant of this project, within int4 for the two-key form: "kntw" in ASCII.
LIVENESS_LOCK_CLASS = 0x6B6E_7477


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
