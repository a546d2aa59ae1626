"""core/pagination.py: cursors that only this API's own pages can give, and keyset pages."""

import base64
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from core.pagination import InvalidCursor, decode_cursor, encode_cursor, keyset_page

WHEN = datetime(2024, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips():
    assert decode_cursor(encode_cursor(WHEN, 42), datetime, int) == (WHEN, 42)
    assert decode_cursor(encode_cursor(7), int) == (7,)


@pytest.mark.parametrize("cursor", ["", "!!!", "é", base64.urlsafe_b64encode(b"\xff|1").decode()])
def test_garbage_is_an_invalid_cursor(cursor):
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, datetime, int)


@pytest.mark.parametrize(
    "decoded",
    [
        "not a cursor",
        "yesterday|1",
        "2024-01-01T00:00:00|1",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:00:00+00:00|1|2",
        "2024-01-01T00:00:00+00:00|x",
        "2024-01-01T00:00:00+00:00|-1",
        "2024-01-01T00:00:00+00:00|0",
        "2024-01-01T00:00:00+00:00| 1",
        f"2024-01-01T00:00:00+00:00|{2**63}",
        "9999-12-31T23:59:59-23:59|1",
    ],
)
def test_forged_contents_are_an_invalid_cursor(decoded):
    with pytest.raises(InvalidCursor):
        decode_cursor(b64(decoded), datetime, int)


@pytest.mark.parametrize("decoded", ["", "0", "-1", "1.5", "1|2", f"{2**63}", "\u0661"])
def test_a_bad_id_is_an_invalid_cursor(decoded):
    with pytest.raises(InvalidCursor):
        decode_cursor(b64(decoded), int)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "order", [("pk",), ("-pk",), ("-date_joined", "-pk"), ("date_joined", "pk")]
)
def test_keyset_pages_walk_every_row_once_in_order_ties_included(order):
    users = get_user_model().objects
    for number in range(7):
        users.create(username=f"u{number}", date_joined=WHEN if number % 2 else datetime.now(UTC))
    expected = list(users.order_by(*order).values_list("pk", flat=True))

    seen, pages, cursor = [], 0, None
    while True:
        page = keyset_page(users.all(), order=order, limit=3, cursor=cursor)
        seen += [user.pk for user in page.items]
        pages += 1
        if page.next is None:
            break
        cursor = page.next

    assert (seen, pages) == (expected, 3)
