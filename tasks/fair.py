"""Fair turns between the owners of queued work, and a limit on how much each may queue.

Work that belongs to owners (a user's imports) is done one small unit at a time (a batch), and
each unit goes to whichever owner's turn it is: an owner never served first, then the one served
longest ago. An owner with one unit waits behind at most the unit being done now, however many
units another owner has queued. Each owner's turn is a row that the worker serving it locks
(SKIP LOCKED) until the unit commits: two workers serve two owners side by side, not one owner
twice while another waits.

`hold_admission` serialises one owner's requests to queue work, so that a limit checked after it
cannot be overrun by requests arriving together.
"""

from collections.abc import Callable, Collection

from django.db import connection
from django.db.models import F
from django.utils import timezone

from .models import OwnerTurn

# Any constant of this project, within int4 for the two-key form: "knfq" in ASCII.
ADMISSION_LOCK_CLASS = 0x6B6E_6671


class OwnerLimitReached(Exception):
    """An owner has as much work queued as it may; `detail` says what to do, `retry_after` when."""

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


def hold_admission(*, queue: str, owner: int) -> None:
    """Wait for, and hold until the transaction ends, the owner's right to queue work."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            [ADMISSION_LOCK_CLASS, f"{queue}:{owner}"],
        )


def enroll(*, queue: str, owner: int) -> None:
    """Give the owner its turn row, in the transaction that queues its first work."""
    OwnerTurn.objects.bulk_create([OwnerTurn(queue=queue, owner=owner)], ignore_conflicts=True)


def serve_next(*, queue: str, owners: Collection[int], serve: Callable[[int], bool]) -> int | None:
    """Do one unit of work for whichever of `owners` has the turn; returns that owner, or None.

    Call inside a transaction. `serve(owner)` does one unit of the owner's work in it, or returns
    False when it has none it can take (all locked by other workers): the next owner is asked.
    Owners whose turn another worker holds, or that were never enrolled, are skipped.
    """
    order = OwnerTurn.objects.filter(queue=queue, owner__in=owners).order_by(
        F("served").asc(nulls_first=True), "id"
    )
    for turn_id, owner in order.values_list("id", "owner"):
        held = (
            OwnerTurn.objects.select_for_update(skip_locked=True)
            .filter(id=turn_id)
            .values_list("id", flat=True)
            .first()
        )
        if held is not None and serve(owner):
            OwnerTurn.objects.filter(id=turn_id).update(served=timezone.now())
            return owner
    return None
