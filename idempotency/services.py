"""Run a write once per client-chosen key, so a client that retries never writes twice.

The key's record (the response the write gave) is saved in the write's own transaction: after a
crash there is either both or neither, never a note without its key or a key without its note.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import KEY_LIFETIME, KEY_MAX_LENGTH, IdempotencyKey

# 1 to 255 printable ASCII characters (a UUID is the usual choice).
KEY_PATTERN = re.compile(rf"[\x20-\x7e]{{1,{KEY_MAX_LENGTH}}}")


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Any
    replayed: bool  # True: the stored answer to an earlier request with this key


class KeyReused(Exception):
    """The key was already used for a different request."""


class _Raced(Exception):
    """A concurrent request with the same key committed first."""


def key_is_valid(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    return fingerprint_hasher(method=method, path=path, body=body).hexdigest()


def fingerprint_hasher(*, method: str, path: str, body: bytes = b""):
    """The fingerprint's hash, to be fed the rest of a body read in pieces (`update`)."""
    return hashlib.sha256(f"{method} {path}\n".encode() + body)


def oldest_live() -> datetime:
    return timezone.now() - KEY_LIFETIME


def run_once(
    *,
    owner: User,
    key: str,
    fingerprint: str,
    action: Callable[[], tuple[int, Any]],
) -> Outcome:
    """`action()` (a write returning status and JSON body) at most once per owner and key.

    A later request with the same key and fingerprint gets the stored answer; with another
    fingerprint, KeyReused. Two requests with one key at the same moment: the second waits on
    the unique index for the first to commit, is rolled back whole, and replays the first.
    """
    earlier = _live_record(owner, key)
    if earlier is not None:
        return _replay(earlier, fingerprint)
    try:
        with transaction.atomic():
            # This owner's expired keys go first, so an expired key is free to be used again.
            IdempotencyKey.objects.filter(owner=owner, created__lt=oldest_live()).delete()
            status, body = action()
            try:
                IdempotencyKey.objects.create(
                    owner=owner,
                    key=key,
                    fingerprint=fingerprint,
                    response_status=status,
                    response_body=body,
                )
            except IntegrityError as error:
                raise _Raced from error  # leaving the block rolls the write back too
    except _Raced as raced:
        earlier = _live_record(owner, key)
        if earlier is None:  # not a duplicate key after all
            assert isinstance(raced.__cause__, IntegrityError)  # raised from it, above
            raise raced.__cause__ from None
        return _replay(earlier, fingerprint)
    return Outcome(status=status, body=body, replayed=False)


def has_answer(*, owner: User, key: str) -> bool:
    """An earlier request with this key was answered (and its answer is kept): a retry of it
    gets that answer, not a new check of limits the first one already passed."""
    return _live_record(owner, key) is not None


def purge_expired() -> int:
    """Delete every owner's expired keys; returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(created__lt=oldest_live()).delete()
    return deleted


def _live_record(owner: User, key: str) -> IdempotencyKey | None:
    return IdempotencyKey.objects.filter(owner=owner, key=key, created__gte=oldest_live()).first()


def _replay(record: IdempotencyKey, fingerprint: str) -> Outcome:
    if record.fingerprint != fingerprint:
        raise KeyReused
    return Outcome(status=record.response_status, body=record.response_body, replayed=True)
