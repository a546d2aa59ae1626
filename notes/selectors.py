import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.search import SearchQuery
from django.db.models import Q, QuerySet

from .models import SEARCH_CONFIG, Note, search_vector

MAX_ID = 2**63 - 1  # bigint: a larger id in a cursor would make PostgreSQL refuse the query


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    items: list[Note]
    next: str | None


def encode_cursor(note: Note) -> str:
    raw = f"{note.created.isoformat()}|{note.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, note_id = raw.split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not (note_id.isascii() and note_id.isdigit()):
            raise ValueError
        if not 0 < int(note_id) <= MAX_ID:
            raise ValueError
        # In UTC, or overflowing here rather than in PostgreSQL (e.g. 9999-12-31T23:59-23:59).
        return when.astimezone(UTC), int(note_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None


def note_get(*, owner: AbstractBaseUser, note_id: int) -> Note | None:
    """The caller's note, or None: another user's note is indistinguishable from a missing one."""
    return Note.objects.filter(owner=owner, pk=note_id).first()


def note_list(
    *,
    owner: AbstractBaseUser,
    limit: int,
    cursor: str | None = None,
    tag: str | None = None,
    query: str | None = None,
) -> Page:
    """One page of the owner's notes, newest first.

    Keyset pagination on (created, id): a page never repeats or skips notes because others were
    inserted meanwhile, and no COUNT is needed.
    """
    notes: QuerySet[Note] = Note.objects.filter(owner=owner)
    if tag:
        notes = notes.filter(tags__contains=[tag])
    if query:
        notes = notes.annotate(document=search_vector()).filter(
            document=SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        )
    if cursor:
        created, note_id = decode_cursor(cursor)
        notes = notes.filter(Q(created__lt=created) | Q(created=created, pk__lt=note_id))
    rows = list(notes.order_by("-created", "-pk")[: limit + 1])
    has_more = len(rows) > limit
    items = rows[:limit]
    return Page(items=items, next=encode_cursor(items[-1]) if has_more else None)
