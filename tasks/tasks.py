"""The runtime's own periodic work: finished task results and orphaned uploads do not pile up."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.tasks import TaskResultStatus, task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from filestore.services import file_remove_orphans

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


@periodic.every(settings.HOUSEKEEPING_INTERVAL_SECONDS)
@task
def remove_orphan_files() -> int:
    """Remove stored files no row names after FILES_ORPHAN_GRACE_SECONDS (uploads cut short).
    Without a local archive (FILES_URL), the store is the only copy a restore can read: a file
    stays there as long as the archive keeps the database's history (BACKUP_RETENTION)."""
    grace = settings.FILES_ORPHAN_GRACE_SECONDS
    if settings.PROTECTED_FILES_ARCHIVE_DIR is None:
        grace = max(grace, settings.BACKUP_RETENTION * 86400)
    return len(file_remove_orphans(grace_seconds=grace))
