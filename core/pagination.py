"""Lists by cursor, for every app: pages stable under inserts, and no COUNT (docs/api.md).

A page ends where the list's ordering key says, e.g. (created, id) newest first, and the next
one starts after that key. The cursor is the key as unpadded base64url text: opaque to clients,
and checked on its way back, so that one this API did not return is a 400 naming the cursor
(config/api.py), never a value PostgreSQL refuses.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from django.db.models import DateTimeField, IntegerField, Model, Q, QuerySet
from ninja import Query
from pydantic import StringConstraints

from .fields import MAX_BIGINT, NO_NUL

type Key = datetime | int


class InvalidCursor(ValueError):
    """A cursor this API did not return."""


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    next: str | None  # the cursor of the following page; None on the last one


# The `cursor` query parameter of a list. The pattern is declared for the schema only: any
# other text is refused with the same 400 as a well-formed cursor this API did not return.
_cursor = Query(description="Opaque: the `next` of the previous page; omit for the first page.")
_cursor.json_schema_extra |= {"pattern": "^[A-Za-z0-9_-]*$"}
Cursor = Annotated[
    Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)] | None, _cursor
]


def encode_cursor(*key: Key) -> str:
    text = "|".join(part.isoformat() if isinstance(part, datetime) else str(part) for part in key)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type[Key]) -> tuple[Key, ...]:
    """The key `encode_cursor` wrote, its parts of these types; InvalidCursor for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = text.split("|")
        if len(parts) != len(kinds):
            raise ValueError
        return tuple(_part(part, kind) for part, kind in zip(parts, kinds, strict=True))
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None


def _part(text: str, kind: type[Key]) -> Key:
    if kind is datetime:
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            raise ValueError
        # In UTC, or overflowing here rather than in PostgreSQL (e.g. 9999-12-31T23:59-23:59).
        return when.astimezone(UTC)
    # An id: what PostgreSQL's bigint holds, in ASCII digits only (int() also takes " 1").
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= MAX_BIGINT):
        raise ValueError
    return int(text)


def keyset_page[T: Model](
    rows: QuerySet[T], *, order: tuple[str, ...], limit: int, cursor: str | None
) -> Page[T]:
    """One page of `rows` sorted by `order` ("-created", "-pk"), after the key in `cursor`.

    The key's fields are datetimes or integers, and the last of them is unique (an id).
    """
    names = [field.removeprefix("-") for field in order]
    if cursor:
        key = decode_cursor(cursor, *(_kind(rows.model, name) for name in names))
        rows = rows.filter(_after(order, key))
    found = list(rows.order_by(*order)[: limit + 1])
    items = found[:limit]
    last = items[-1] if len(found) > limit else None
    return Page(
        items=items, next=encode_cursor(*(getattr(last, n) for n in names)) if last else None
    )


def _kind(model: type[Model], name: str) -> type[Key]:
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if isinstance(field, DateTimeField):
        return datetime
    if isinstance(field, IntegerField):
        return int
    raise TypeError(f"{model.__name__}.{name}: a cursor holds datetimes and integers only")


def _after(order: tuple[str, ...], key: tuple[Key, ...]) -> Q:
    """The rows after `key`: for (-a, -b), a < key's a, or a equal to it and b < key's b."""
    after = Q()
    for depth, field in enumerate(order):
        name = field.removeprefix("-")
        equal = {earlier.removeprefix("-"): key[n] for n, earlier in enumerate(order[:depth])}
        beyond = f"{name}__lt" if field.startswith("-") else f"{name}__gt"
        after |= Q(**equal, **{beyond: key[depth]})
    return after
