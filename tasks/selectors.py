from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult


@dataclass(frozen=True)
class QueueSummary:
    queued: int
    running: int
    failed: int
    oldest_queued_age: timedelta | None


def queue_summary() -> QueueSummary:
    """What `status` shows: tasks waiting, running and failed, and how long the oldest waits."""
    counts = dict.fromkeys(TaskResultStatus.values, 0)
    for row in DBTaskResult.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    oldest = DBTaskResult.objects.ready().aggregate(oldest=Min("enqueued_at"))["oldest"]
    return QueueSummary(
        queued=counts[TaskResultStatus.READY],
        running=counts[TaskResultStatus.RUNNING],
        failed=counts[TaskResultStatus.FAILED],
        oldest_queued_age=timezone.now() - oldest if oldest else None,
    )
