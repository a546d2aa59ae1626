from datetime import timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone

from tasks import periodic

from .models import ApiToken, LoginFailure


@periodic.every(settings.HOUSEKEEPING_INTERVAL_SECONDS)
@task
def purge_expired_tokens() -> int:
    """Expired tokens can no longer sign anyone in (services.token_user): nothing reads them."""
    deleted, _ = ApiToken.objects.filter(expires__lte=timezone.now()).delete()
    return deleted


@periodic.every(settings.HOUSEKEEPING_INTERVAL_SECONDS)
@task
def purge_old_login_failures() -> int:
    """Failures older than the throttling window count for nothing (throttle.py)."""
    window_start = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    deleted, _ = LoginFailure.objects.filter(at__lte=window_start).delete()
    return deleted
