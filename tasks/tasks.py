"""The runtime's own periodic work: finished task results do not pile up."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.tasks import TaskResultStatus, task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from . import periodic
from .models import PeriodicRun


@periodic.every(settings.HOUSEKEEPING_INTERVAL_SECONDS)
@task
def prune_finished_tasks() -> int:
    """Delete results finished more than TASK_RESULT_RETENTION_DAYS ago, and their periods."""
    before = timezone.now() - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS)
    deleted, _ = DBTaskResult.objects.filter(
        Q(status=TaskResultStatus.SUCCESSFUL) | Q(status=TaskResultStatus.FAILED),
        finished_at__lt=before,
    ).delete()
    PeriodicRun.objects.filter(period_start__lt=before).delete()
    return deleted
