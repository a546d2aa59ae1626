"""The store's periodic work: files no row names (uploads cut short) do not pile up."""

from django.conf import settings
from django.tasks import task

from tasks import periodic

from .services import file_remove_orphans


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
