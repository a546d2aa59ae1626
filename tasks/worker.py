"""The task worker: django-tasks-db's loop, and beside it, on a thread of its own, the liveness
lock, queueing again the tasks of dead workers, the periodic schedules, and their runs (the
housekeeping queue, which the loop does not take: a purge never waits behind a long import).

The thread keeps its own connection (the worker loop closes its own between polls, which
would drop the lock). Both outlive the database going away (a failover, a restart): the thread
takes the lock again on the server it reconnects to, and the loop waits for that before it
claims anything again. A task cut off that way is queued again, not failed (tasks/liveness.py).
"""

import logging
import os
import threading
import time
from pathlib import Path

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, connection, transaction
from django_tasks_db.compat import TaskContext, task_finished, task_started
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from core.errors import first_line

from . import liveness, periodic

logger = logging.getLogger(__name__)


class Housekeeper(threading.Thread):
    def __init__(
        self,
        *,
        worker_id: str,
        tick_seconds: float,
        parent_pid: int | None,
        heartbeat_file: Path | None = None,
    ):
        super().__init__(name="task-housekeeper", daemon=True)
        self.worker_id = worker_id
        self.heartbeat_file = heartbeat_file
        self.tick_seconds = tick_seconds
        self.parent_pid = parent_pid
        self.holds_lock = threading.Event()

    def run(self) -> None:
        while True:
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                # serve is gone without stopping us (SIGKILL): do not outlive it. A task
                # running now is queued again by the next worker (liveness.py).
                logger.warning("The serve process that started this worker is gone: exiting")
                os._exit(1)
            try:
                self.tick()
                if self.heartbeat_file is not None:
                    self.heartbeat_file.touch()  # a liveness probe's (deploy/kubernetes)
            except DatabaseError as error:
                logger.warning("Task housekeeping: %s", first_line(error))
                self.holds_lock.clear()  # the connection, and the lock with it, may be gone
                connection.close()
            time.sleep(self.tick_seconds)

    def tick(self) -> None:
        if not self.holds_lock.is_set():
            if not liveness.hold_worker_lock(self.worker_id):
                raise DatabaseError(f"worker id {self.worker_id} is in use by another worker")
            # A housekeeping task this thread ran when the database went away is still RUNNING
            # under this id, which no other worker would queue again (this one is alive).
            liveness.requeue_own(worker_id=self.worker_id, housekeeping=True)
            self.holds_lock.set()
        liveness.requeue_orphans(except_worker=self.worker_id)
        periodic.enqueue_due()
        run_housekeeping(self.worker_id)


def run_housekeeping(worker_id: str) -> int:
    """Run the ready tasks of the housekeeping queue, one after another, here; how many ran.

    Claimed under this worker's id, so that one cut short by the worker's death runs again
    (liveness.py). Not by django-tasks-db's Worker.run, which closes the thread's connection
    between polls, and with it the liveness lock.
    """
    # Only its run_task is used: the database going away is no task's failure (TaskLoop).
    runner = task_runner(worker_id=worker_id, queue_name=periodic.HOUSEKEEPING_QUEUE)
    ran = 0
    while True:
        with transaction.atomic():
            ready = DBTaskResult.objects.ready().filter(
                backend_name="default", queue_name=periodic.HOUSEKEEPING_QUEUE
            )
            result = ready.get_locked()
            if result is None:
                return ran
            result.claim(worker_id)
        runner.run_task(result)
        ran += 1


class TaskLoop(Worker):
    """django-tasks-db's worker loop, which claims tasks only while the housekeeper holds this
    worker's lock, and outlives the database going away.

    django-tasks-db's own loop exits on such an error, leaving its task RUNNING for the next
    worker; and when the database is back by the time the error is handled (a switchover, a
    restart), it marks the task FAILED: an import cut off so never finishes.
    This one waits until the lock is held again (on the server the housekeeper reconnected to),
    queues again what it was running, and goes on.
    """

    def __init__(self, *, holds_lock: threading.Event, **options):
        super().__init__(**options)
        self.holds_lock = holds_lock
        self.cut_off = False

    def run(self) -> None:
        while self.running:
            # No task is claimed before the lock is held: else a peer could requeue it at once.
            if not self.holds_lock.wait(timeout=1):
                continue
            try:
                if self.cut_off:
                    # Its own: no other worker would (this one is alive), and a claim whose
                    # commit went through unanswered is one too.
                    liveness.requeue_own(worker_id=self.worker_id)
                    self.cut_off = False
                super().run()
                return
            except DatabaseError as error:
                if not liveness.lost_database(error):
                    raise
                logger.warning("Task worker: %s; waiting for the database", first_line(error))
                connection.close()
                self.cut_off = True
                # The housekeeper's connection went to the same server: its next tick takes the
                # lock again, on whichever server answers now.
                self.holds_lock.clear()

    def run_task(self, db_task_result: DBTaskResult) -> None:
        """django-tasks-db's, except that the database going away is not the task's failure: the
        error goes up to run(), which queues the task again."""
        try:
            self.running_task = True
            task = db_task_result.task
            task_result = db_task_result.task_result
            backend = task.get_backend()
            task_started.send(sender=backend, task_result=task_result)
            args, kwargs = task_result.args, task_result.kwargs
            if task.takes_context:
                value = task.call(TaskContext(task_result=task_result), *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
            db_task_result.set_successful(value)
            task_finished.send(sender=backend, task_result=db_task_result.task_result)
        except BaseException as error:
            if liveness.lost_database(error):
                raise
            db_task_result.set_failed(error)
            try:
                sender = type(db_task_result.task.get_backend())
                task_result = db_task_result.task_result
            except (ImportError, SuspiciousOperation):
                logger.exception("Task id=%s failed unexpectedly", db_task_result.id)
            else:
                task_finished.send(sender=sender, task_result=task_result)
        finally:
            self.running_task = False
            self._run_tasks += 1


def task_runner(*, worker_id: str, queue_name: str) -> TaskLoop:
    """A TaskLoop for its run_task alone, on tasks claimed by the caller: no lock to wait for,
    no polling, no start-up delay."""
    return TaskLoop(
        holds_lock=threading.Event(),
        queue_names=[queue_name],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
