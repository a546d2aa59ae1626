"""Failed-login throttling, shared by every server process through the database.

Three counts of failures within LOGIN_FAILURE_WINDOW_SECONDS:

- per account and client address: past LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS, that address
  gets 429 for that account, even with the right password;
- per client address, over every account: past LOGIN_FAILURES_PER_ADDRESS, 429 for any account;
- per account, over every address: never a refusal, or anyone could keep anyone out, the admin
  included. Past LOGIN_FAILURES_PER_ACCOUNT, each attempt for that account waits
  LOGIN_SLOWDOWN_SECONDS before its password is checked: its owner, at an address without
  failures of its own, still gets in; guesses spread over many addresses come slower.

Each attempt is written down as a failure before its password is checked, under a lock on its
address: the attempts of one address are counted one after the other, so a burst of parallel
guesses gets exactly the limit checked, however long the password hasher takes. A correct
password deletes the failures of its own account and address, no others: an owner's login must
not hand a guesser somewhere else a fresh allowance.
"""

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from observability import events

from .models import LoginFailure, hash_username

# An IPv6 client usually holds a whole /64 (one per home, phone or server): counted per address
# inside it, it could send each guess from a new one.
IPV6_COUNTED_PREFIX = 64


@dataclass
class LoginThrottled(Exception):
    """Too many failed logins for this account from this address, or from this address."""

    retry_after: int

    def __str__(self) -> str:
        return f"Too many failed logins; try again in {self.retry_after} seconds."


def counted_address(address: str | None) -> str | None:
    """What the limits count an address as: itself, or for IPv6 its /64."""
    if address is None:
        return None
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((parsed, IPV6_COUNTED_PREFIX), strict=False)
        return str(network.network_address)
    return str(parsed)


def login_attempt_begin(*, username: str, address: str | None) -> None:
    """Count this attempt as a failure until it succeeds; raise LoginThrottled when over a limit.

    Returns once the attempt may be checked: at once, or after the slowdown of an account that
    has failed too often from everywhere.
    """
    now = timezone.now()
    window_start = now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    account, address = hash_username(username), counted_address(address)
    database = router.db_for_write(LoginFailure)
    failures = LoginFailure.objects.using(database)
    failures.filter(at__lte=window_start).delete()  # keeps the table small
    with transaction.atomic(using=database):
        _lock(database, address)
        from_address = failures.filter(at__gt=window_start, address=address)
        wait = max(
            _wait(
                from_address.filter(username_hash=account),
                settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS,
                window_start,
            ),
            _wait(from_address, settings.LOGIN_FAILURES_PER_ADDRESS, window_start),
        )
        if wait:
            events.login_throttled()
            raise LoginThrottled(retry_after=wait)
        slow = _reached(
            failures.filter(at__gt=window_start, username_hash=account),
            settings.LOGIN_FAILURES_PER_ACCOUNT,
        )
        failures.create(username_hash=account, address=address, at=now)
    if slow:
        # After the lock is released: only this attempt waits. Holds a server thread, so
        # settings caps it (LOGIN_SLOWDOWN_MILLISECONDS).
        time.sleep(settings.LOGIN_SLOWDOWN_SECONDS)


def _lock(database: str, address: str | None) -> None:
    """Hold this address's attempts back until this transaction ends (a few milliseconds).

    Inside a request-wide transaction (ATOMIC_REQUESTS, which this project does not use) it
    would last through the password check: one attempt at a time per address.
    """
    digest = hashlib.sha256(f"keepnotes login address {address}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with connections[database].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _reached(failures, limit: int) -> bool:
    """At least `limit` of these failures; a limit of 0 turns this off."""
    return limit > 0 and failures[:limit].count() >= limit


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


def login_succeeded(*, username: str, address: str | None) -> None:
    """A correct password clears the failures of its account from its address (no others)."""
    LoginFailure.objects.filter(
        username_hash=hash_username(username), address=counted_address(address)
    ).delete()


def unlock(*, username: str) -> int:
    """Forget every failure of this account, from every address; returns how many there were."""
    deleted, _ = LoginFailure.objects.filter(username_hash=hash_username(username)).delete()
    return deleted
