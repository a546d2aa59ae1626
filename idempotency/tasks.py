from django.conf import settings
from django.tasks import task

from tasks import periodic

from . import services


@periodic.every(settings.HOUSEKEEPING_INTERVAL_SECONDS)
@task
def purge_expired_idempotency_keys() -> int:
    """What `manage.py purge_idempotency_keys` does, run by a worker once per period."""
    return services.purge_expired()
