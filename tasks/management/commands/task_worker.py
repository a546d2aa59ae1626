from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.module_loading import autodiscover_modules
from django_tasks_db.management.commands import db_worker

from core import env
from tasks.worker import Housekeeper, TaskLoop


class Command(db_worker.Command):
    help = (
        "Run background tasks: django-tasks-db's db_worker, plus queueing again the tasks of "
        "workers that died and enqueueing the periodic schedules (docs/tasks.md)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(interval=settings.TASK_POLL_SECONDS, reload=False)

    def handle(self, *args, **options):
        queue_names = options["queue_name"].split(",")
        excluded = options["exclude_queues"].split(",") if options["exclude_queues"] else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        if options["reload"]:
            raise CommandError("task_worker does not reload on code changes: restart it.")
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
        self.configure_logging(options["verbosity"])
        # django-tasks-db's loop, made to outlive the database going away (tasks/worker.py).
        loop = TaskLoop(
            holds_lock=housekeeper.holds_lock,
            queue_names=queue_names,
            excluded_queue_names=excluded,
            interval=options["interval"],
            batch=options["batch"],
            backend_name=options["backend_name"],
            startup_delay=options["startup_delay"],
            max_tasks=options["max_tasks"],
            worker_id=options["worker_id"],
        )
        loop.configure_signals()
        loop.run()
