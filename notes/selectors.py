import functools
import re
from datetime import UTC, datetime

from django.contrib.auth.models import User
from django.contrib.postgres.search import SearchQuery
from django.db import DatabaseError
from django.db.models import Q, QuerySet

from core.pagination import Page, decode_cursor, encode_cursor
from core.prepared_query import PreparedQuery

from .models import SEARCH_CONFIG, Note, search_vector


class InvalidSearch(ValueError):
    pass


# websearch_to_tsquery passes over ASCII white space and the to_tsquery operators it ignores while
# it waits for a word; a "-" there is a NOT (a "-" right after a word is part of the word). Its
# parser keeps pending NOTs on a stack of 32 and fails on more ("tsquery stack too small", a 500
# until search_text). That is the only websearch input PostgreSQL refuses, as far as its source
# (tsquery.c) and tests/unit/test_search_text.py, which fuzzes it, show.
_SKIPPED = r" \t\n\r\v\f!&|()<"
# A run of those and "-": at the start or after a quote, or else beginning with a skipped
# character (so that the "-" of a word such as "e-mail" or "x--" is never part of a run).
_NOT_RUN = re.compile(rf'(?:^|(?<="))[-{_SKIPPED}]+|[{_SKIPPED}][-{_SKIPPED}]*')


def _fewer_nots(run: re.Match) -> str:
    text = run[0]
    nots = text.count("-")
    if nots < 3:
        return text
    # Two, not none, for an even run: "x -- or y" is x AND y, but "x or y" would be x OR y.
    return text.replace("-", "") + "-" * (2 - nots % 2)


def search_text(query: str) -> str:
    """`query` with at most two NOTs in a row: the same search, and one PostgreSQL can parse.

    NOT NOT x is x, so a run of NOTs keeps its parity and the search finds the same notes.
    """
    return _NOT_RUN.sub(_fewer_nots, query)


def _is_search_refusal(error: DatabaseError) -> bool:
    """PostgreSQL refused the search text itself (a limit of its tsquery parser)."""
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or ""
    if sqlstate.startswith("54"):  # program_limit_exceeded
        return True
    # The parser's own limits are raised without a code of their own: internal_error, known by
    # its message ("tsquery stack too small").
    message = getattr(getattr(cause, "diag", None), "message_primary", None) or ""
    return sqlstate == "XX000" and "tsquery" in message


# Every column, so that the notes made from rows are whole model instances.
NOTE_COLUMNS = ("id", "owner_id", "title", "body", "tags", "created", "updated")
# What a page shows of each note: the API's NoteOut fields, in its order.
PAGE_COLUMNS = ("id", "title", "body", "tags", "created", "updated")
# Stand-ins for the values of hot-path queries (core/prepared_query.py): never real values.
_ID_MARKER = -7_000_001
_OWNER_MARKER = -7_000_002
_TAG_MARKER = "\x00tag"
_QUERY_MARKER = "\x00query"
_CREATED_MARKER = datetime(1111, 11, 11, 11, 11, 11, 111111, tzinfo=UTC)

_NOTE = PreparedQuery(
    lambda owner_id, note_id: (
        Note.objects.filter(owner_id=owner_id, pk=note_id).order_by().values_list(*NOTE_COLUMNS)
    ),
    owner_id=_OWNER_MARKER,
    note_id=_ID_MARKER,
)


def note_get(*, owner: User, note_id: int) -> Note | None:
    """The caller's note, or None: another user's note is indistinguishable from a missing one."""
    found = _NOTE.instances(owner_id=owner.pk, note_id=note_id)
    return found[0] if found else None


def _page(
    *,
    limit: int,
    owner_id: int,
    tag: str | None = None,
    query: str | None = None,
    created: datetime | None = None,
    note_id: int | None = None,
) -> QuerySet:
    notes = Note.objects.filter(owner_id=owner_id)
    if tag is not None:
        notes = notes.filter(tags__contains=[tag])
    if query is not None:
        notes = notes.alias(document=search_vector()).filter(
            document=SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        )
    if created is not None:
        # The first condition lets the (owner, created, id) index start at the cursor.
        notes = notes.filter(created__lte=created).filter(
            Q(created__lt=created) | Q(created=created, pk__lt=note_id)
        )
    return notes.order_by("-created", "-pk").values_list(*PAGE_COLUMNS)[: limit + 1]


# The most notes a page may hold (the API's `limit`).
PAGE_LIMIT_MAX = 100


# One entry per shape: every limit, with or without each of tag, query and cursor.
@functools.lru_cache(maxsize=PAGE_LIMIT_MAX * 2**3)
def _page_query(limit: int, tag: bool, query: bool, after: bool) -> PreparedQuery:
    """The page query of this shape, compiled once per process."""
    markers: dict = {"owner_id": _OWNER_MARKER}
    if tag:
        markers["tag"] = _TAG_MARKER
    if query:
        markers["query"] = _QUERY_MARKER
    if after:
        markers |= {"created": _CREATED_MARKER, "note_id": _ID_MARKER}
    return PreparedQuery(functools.partial(_page, limit=limit), **markers)


def note_list(
    *,
    owner: User,
    limit: int,
    cursor: str | None = None,
    tag: str | None = None,
    query: str | None = None,
) -> Page[dict]:
    """One page of the owner's notes, newest first, each a dict of PAGE_COLUMNS.

    Keyset pagination on (created, id): a page never repeats or skips notes because others were
    inserted meanwhile, and no COUNT is needed. Dicts, not model instances: the API sends them
    as they are (notes/api.py, list_notes).
    """
    values: dict = {"owner_id": owner.pk}
    if tag:
        values["tag"] = tag
    if query:
        values["query"] = search_text(query)
    if cursor:
        values["created"], values["note_id"] = decode_cursor(cursor, datetime, int)
    prepared = _page_query(limit, bool(tag), bool(query), bool(cursor))
    try:
        rows = prepared.rows(**values)
    except DatabaseError as error:
        # A refusal search_text does not foresee is still the client's input, not a 500.
        if query and _is_search_refusal(error):
            raise InvalidSearch("PostgreSQL cannot parse this search; simplify it") from error
        raise
    items = [dict(zip(PAGE_COLUMNS, row, strict=True)) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return Page(items=items, next=encode_cursor(last["created"], last["id"]) if last else None)
