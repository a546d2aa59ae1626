"""Periodic schedules, declared in code next to the task they run.

    @periodic.every(settings.HOUSEKEEPING_INTERVAL_SECONDS)
    @task
    def purge_expired_idempotency_keys() -> int: ...

Every worker checks the schedules each tick, but a period's run is enqueued by one of them
only: the one whose INSERT of the (schedule, period) row wins the unique constraint, in the
same transaction as the enqueue. Several workers, one run per period; a worker that was down
for a whole period does not make it up later (the purges catch up by themselves).

The runs go to the housekeeping queue, which each worker's housekeeping thread runs itself
(tasks/worker.py), beside whatever task its loop is busy with: a purge never waits behind an
import. So a scheduled task must be short, like the purges; a long one should enqueue its work
on the default queue instead.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.tasks import Task, TaskResult
from django.utils import timezone

from .models import PeriodicRun


@dataclass(frozen=True)
class Schedule:
    task: Task
    seconds: int

    @property
    def name(self) -> str:
        return self.task.module_path

    def period_start(self, now: datetime) -> datetime:
        return datetime.fromtimestamp(now.timestamp() // self.seconds * self.seconds, tz=UTC)


# Also in settings.TASKS' QUEUES, which the backend checks every enqueue against.
HOUSEKEEPING_QUEUE = "housekeeping"

_schedules: dict[str, Schedule] = {}
# The period each schedule was last settled for in this process (enqueued here or elsewhere):
# each worker asks the database once per period, not once per tick.
_settled: dict[str, datetime] = {}


def every(seconds: int):
    """Register the task (below this decorator) to be enqueued once per `seconds`."""
    if seconds < 1:
        raise ValueError(f"a periodic task runs at most once a second, not every {seconds} s")

    def register(task: Task) -> Task:
        schedule = Schedule(task=task, seconds=seconds)
        _schedules[schedule.name] = schedule
        return task

    return register


def schedules() -> list[Schedule]:
    return list(_schedules.values())


def enqueue_run(task: Task) -> TaskResult:
    """Enqueue one run of a scheduled task now, where its schedule puts them: housekeeping."""
    return task.using(queue_name=HOUSEKEEPING_QUEUE).enqueue()


def enqueue_due(now: datetime | None = None) -> list[str]:
    """Enqueue each schedule whose current period has no run yet; returns their names."""
    now = now or timezone.now()
    enqueued = []
    for schedule in schedules():
        period = schedule.period_start(now)
        if _settled.get(schedule.name) == period:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {PeriodicRun._meta.db_table} (name, period_start)"  # noqa: S608
                " VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
                [schedule.name, period],
            )
            won = cursor.fetchone()
            if won is not None:
                result = enqueue_run(schedule.task)
                PeriodicRun.objects.filter(id=won[0]).update(task_id=result.id)
                enqueued.append(schedule.name)
            # else another worker has this period
        _settled[schedule.name] = period  # only once committed: a failure asks again
    return enqueued
