"""Failed-login throttling, per account and per client address, shared by every server process.

Each attempt is written down as a failure *before* the password is checked, then counted with
the others in the window: two parallel guesses cannot both slip under the limit while the
password hasher runs. A successful login deletes its account's failures, this one included;
a refused attempt deletes its own row, so only real failures are ever counted.
"""

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from .models import LoginFailure, hash_username


@dataclass
class LoginThrottled(Exception):
    """Too many failed logins for this account or from this address; retry after this long."""

    retry_after: int

    def __str__(self) -> str:
        return f"Too many failed logins; try again in {self.retry_after} seconds."


def client_address(request: HttpRequest | None) -> str | None:
    """The client's IP: the peer, or the entry the trusted proxies added to X-Forwarded-For.

    Each proxy appends the address it received the request from, so with N proxies in front the
    Nth entry from the right is the client as the outermost proxy saw it; anything to its left
    was sent by the client and proves nothing.
    """
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        forwarded = [entry.strip() for entry in forwarded if entry.strip()]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def login_attempt_begin(*, username: str, address: str | None) -> None:
    """Count this attempt as a failure until it succeeds; raise LoginThrottled when over a limit."""
    now = timezone.now()
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    LoginFailure.objects.filter(at__lte=now - window).delete()  # keeps the table small
    attempt = LoginFailure.objects.create(
        username_hash=hash_username(username), address=address, at=now
    )
    earlier = LoginFailure.objects.filter(at__gt=now - window).exclude(pk=attempt.pk)
    limits = [
        (earlier.filter(username_hash=attempt.username_hash), settings.LOGIN_FAILURES_PER_ACCOUNT)
    ]
    if address is not None:
        limits.append((earlier.filter(address=address), settings.LOGIN_FAILURES_PER_ADDRESS))
    wait = max(_wait(failures, limit, now - window) for failures, limit in limits)
    if wait:
        attempt.delete()
        raise LoginThrottled(retry_after=wait)


def _wait(failures, limit: int, window_start: datetime) -> int:
    """Seconds until fewer than `limit` of these failures are left in the window; 0 if already.

    A limit of 0 turns this throttle off.
    """
    if limit <= 0:
        return 0
    recent = list(failures.order_by("-at").values_list("at", flat=True)[:limit])
    if len(recent) < limit:
        return 0
    # The oldest of the `limit` newest failures leaves the window first; then one more is allowed.
    return max(1, math.ceil((recent[-1] - window_start).total_seconds()))


def login_succeeded(*, username: str) -> None:
    """A correct password clears its account's failures (not its address's)."""
    LoginFailure.objects.filter(username_hash=hash_username(username)).delete()
