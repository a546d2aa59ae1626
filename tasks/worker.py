"""What runs beside django-tasks-db's worker loop, on a thread of its own: the liveness lock,
queueing again the tasks of dead workers, the periodic schedules, and their runs (the
housekeeping queue, which the loop does not take: a purge never waits behind a long import).

The thread keeps its own connection (the worker loop closes its own between polls, which
would drop the lock).
"""

import logging
import os
import threading
import time
from pathlib import Path

from django.db import DatabaseError, connection, transaction
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
    runner = Worker(
        queue_names=[periodic.HOUSEKEEPING_QUEUE],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
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
