"""Services and selectors called directly, without HTTP, against the real database."""

import base64
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import superuser_ensure, token_create, token_login, token_revoke, token_user
from core.pagination import InvalidCursor, encode_cursor
from notes.models import Note
from notes.selectors import note_get, note_list
from notes.services import note_create, note_update
from tests.support.api import PASSWORD

pytestmark = pytest.mark.django_db

STRONG = "a-long-and-unguessable-passphrase"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def walk(owner, limit: int, **filters) -> list[int]:
    seen, cursor = [], None
    while True:
        page = note_list(owner=owner, limit=limit, cursor=cursor, **filters)
        seen += [note["id"] for note in page.items]
        if page.next is None:
            return seen
        cursor = page.next


# -- Notes -------------------------------------------------------------------------------------


def test_note_list_pages_newest_first(user):
    ids = [note_create(owner=user, title=f"n{i}", body="", tags=[]).pk for i in range(5)]

    first = note_list(owner=user, limit=2)

    assert [note["id"] for note in first.items] == ids[::-1][:2]
    last = first.items[-1]
    assert first.next == encode_cursor(last["created"], last["id"])
    assert walk(user, limit=2) == ids[::-1]


def test_note_list_last_page_has_no_next(user):
    note_create(owner=user, title="only", body="", tags=[])

    assert note_list(owner=user, limit=1).next is None
    assert note_list(owner=user, limit=5).next is None


def test_keyset_breaks_ties_on_equal_created_by_id(user):
    same_instant = timezone.now()
    Note.objects.bulk_create(
        [Note(owner=user, title=f"tie {i}", created=same_instant) for i in range(5)]
    )
    ids = sorted(Note.objects.values_list("pk", flat=True), reverse=True)

    assert walk(user, limit=2) == ids


def test_note_list_is_per_owner_and_filters(user, other_user):
    mine = note_create(owner=user, title="Running log", body="", tags=["sport"])
    note_create(owner=user, title="Shopping", body="", tags=["home"])
    note_create(owner=other_user, title="Running too", body="", tags=["sport"])

    assert [n["id"] for n in note_list(owner=user, limit=10, tag="sport").items] == [mine.pk]
    assert [n["id"] for n in note_list(owner=user, limit=10, query="runs").items] == [mine.pk]


def test_note_list_with_out_of_range_cursor_raises_invalid_cursor(user):
    with pytest.raises(InvalidCursor):
        note_list(owner=user, limit=5, cursor=b64(f"2024-01-01T00:00:00+00:00|{2**70}"))
    # The transaction is still usable: nothing reached PostgreSQL.
    assert note_list(owner=user, limit=5).items == []


def test_note_get_hides_other_users_notes(user, other_user):
    note = note_create(owner=user, title="mine", body="", tags=[])

    assert note_get(owner=user, note_id=note.pk) == note
    assert note_get(owner=other_user, note_id=note.pk) is None


def test_note_update_saves_only_the_changes_and_bumps_updated(user):
    note = note_create(owner=user, title="before", body="keep", tags=["t"])
    updated_before = note.updated

    note_update(note=note, changes={"title": "after"})

    stored = Note.objects.get(pk=note.pk)
    assert (stored.title, stored.body, stored.tags) == ("after", "keep", ["t"])
    assert stored.updated > updated_before


# -- Tokens ------------------------------------------------------------------------------------


def test_token_user_finds_a_live_token(user):
    raw, token = token_create(user=user)

    assert token_user(raw=raw) == (user, token)


def test_token_user_returns_none_for_an_expired_token(user):
    raw, token = token_create(user=user)
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))

    assert token_user(raw=raw) is None


def test_token_user_returns_none_for_a_revoked_or_unknown_token(user):
    raw, token = token_create(user=user)
    revoked_raw, revoked = token_create(user=user)

    token_revoke(token=revoked)

    assert token_user(raw=revoked_raw) is None
    assert token_user(raw="kn_unknown") is None
    assert token_user(raw=raw) == (user, token)


def test_token_user_returns_none_once_the_user_is_inactive(user):
    raw, _ = token_create(user=user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)

    assert token_user(raw=raw) is None


def test_token_login_checks_credentials(user):
    assert token_login(username="alice", password="wrong") is None
    assert token_login(username="nobody", password=PASSWORD) is None
    raw, token = token_login(username="alice", password=PASSWORD)
    assert token.user == user
    assert token_user(raw=raw) == (user, token)


# -- superuser_ensure ----------------------------------------------------------------------------


def ensure(password: str = STRONG, *, reset_password: bool = False) -> str:
    return superuser_ensure(
        username="root", password=password, email="root@example.com", reset_password=reset_password
    )


def test_superuser_ensure_creates_a_superuser_once():
    assert ensure() == "superuser 'root' created"
    assert ensure() == "superuser 'root' exists"

    root = get_user_model().objects.get(username="root")
    assert root.is_superuser and root.is_staff and root.is_active
    assert root.email == "root@example.com"
    assert root.check_password(STRONG)
    assert get_user_model().objects.filter(username="root").count() == 1


def test_superuser_ensure_keeps_the_password_unless_asked_to_reset():
    ensure()

    assert ensure("another-long-passphrase-entirely") == "superuser 'root' exists"
    assert get_user_model().objects.get(username="root").check_password(STRONG)

    message = ensure("another-long-passphrase-entirely", reset_password=True)
    assert message == "superuser 'root' exists; password updated"
    assert (
        get_user_model()
        .objects.get(username="root")
        .check_password("another-long-passphrase-entirely")
    )


def test_superuser_ensure_without_a_password_creates_nothing():
    message = ensure("")

    assert "not created" in message
    assert "DJANGO_SUPERUSER_PASSWORD" in message
    assert not get_user_model().objects.filter(username="root").exists()


@pytest.mark.parametrize("weak", ["123", "password", "12345678901234", "root@example.com"])
def test_superuser_ensure_refuses_a_weak_password(weak):
    with pytest.raises(ValidationError):
        ensure(weak)

    assert not get_user_model().objects.filter(username="root").exists()


def test_superuser_ensure_refuses_a_weak_reset_and_keeps_the_old_password():
    ensure()

    with pytest.raises(ValidationError):
        ensure("short", reset_password=True)

    assert get_user_model().objects.get(username="root").check_password(STRONG)
