from pathlib import Path

from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from django_tasks_db.management.commands import db_worker

from core import env
from tasks.worker import Housekeeper


class Command(db_worker.Command):
    help = (
        "Run background tasks: django-tasks-db's db_worker, plus queueing again the tasks of "
        "workers that died and enqueueing the periodic schedules (docs/tasks.md)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(interval=settings.TASK_POLL_SECONDS, reload=False)

    def handle(self, *args, **options):
        autodiscover_modules("tasks")  # registers every app's periodic schedules
        # Set by serve (server/task_workers.py): a worker does not outlive the serve it is for.
        parent = env.get_int("TASK_WORKER_PARENT_PID", 0) or None
        heartbeat = env.get_str("TASK_WORKER_HEARTBEAT_FILE")
        housekeeper = Housekeeper(
            worker_id=options["worker_id"],
            tick_seconds=1.0,
            parent_pid=parent,
            heartbeat_file=Path(heartbeat) if heartbeat else None,
        )
        housekeeper.start()
        # No task is claimed before the lock is held: else a peer could requeue it at once.
        while not housekeeper.holds_lock.wait(timeout=1):
            pass
        super().handle(*args, **options)
