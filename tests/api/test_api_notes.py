"""The notes API over HTTP: create, list, search, paginate, read, change, delete, bad input."""

import base64
from datetime import datetime

import pytest
from django.conf import settings

from notes.models import BODY_MAX_LENGTH, MAX_TAGS, TAG_MAX_LENGTH, TITLE_MAX_LENGTH, Note
from notes.services import note_create
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

NOTES_URL = "/api/v1/notes"


def fields_named(body: dict) -> list[str]:
    assert isinstance(body["errors"], list) and body["errors"]
    return [error["field"] for error in body["errors"]]


@pytest.fixture
def make_notes(user):
    """`count` notes of `owner` (default: alice), created oldest first; returns their ids."""

    def make(count: int, owner=None, prefix: str = "note") -> list[int]:
        return [
            note_create(owner=owner or user, title=f"{prefix} {i}", body="", tags=[]).pk
            for i in range(count)
        ]

    return make


def walk(api, query: str = "", between_pages=None) -> tuple[list[int], int]:
    """Follow `next` to the end; returns every id seen, in order, and the number of pages."""
    seen, pages, url = [], 0, f"{NOTES_URL}?{query}"
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [note["id"] for note in body["items"]]
        pages += 1
        if between_pages:
            between_pages()
        url = body["next"] and f"{NOTES_URL}?{query}&cursor={body['next']}"
    return seen, pages


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- Create ------------------------------------------------------------------------------------


def test_create_returns_201_with_every_field(api, user):
    response = api.send(
        "POST", NOTES_URL, json={"title": "Groceries", "body": "milk, eggs", "tags": ["home"]}
    )

    assert response.status_code == 201, response.content
    note = response.json()
    assert set(note) == {"id", "title", "body", "tags", "created", "updated"}
    assert note["title"] == "Groceries"
    assert note["body"] == "milk, eggs"
    assert note["tags"] == ["home"]
    assert datetime.fromisoformat(note["created"]).tzinfo is not None
    assert datetime.fromisoformat(note["updated"]) >= datetime.fromisoformat(note["created"])
    assert Note.objects.get(pk=note["id"]).owner == user


def test_created_note_can_be_read_back(api):
    created = api.send("POST", NOTES_URL, json={"title": "hello", "body": "world", "tags": ["a"]})

    fetched = api.get(f"{NOTES_URL}/{created.json()['id']}")

    assert fetched.status_code == 200, fetched.content
    assert fetched.json() == created.json()


def test_create_defaults_body_and_tags_and_strips_title(api):
    response = api.send("POST", NOTES_URL, json={"title": "  padded  "})

    assert response.status_code == 201, response.content
    assert response.json()["title"] == "padded"
    assert response.json()["body"] == ""
    assert response.json()["tags"] == []


def test_create_accepts_values_at_every_limit(api):
    payload = {
        "title": "t" * TITLE_MAX_LENGTH,
        "body": "b" * BODY_MAX_LENGTH,
        "tags": [f"{i}".rjust(TAG_MAX_LENGTH, "x") for i in range(MAX_TAGS)],
    }

    response = api.send("POST", NOTES_URL, json=payload)

    assert response.status_code == 201, response.content
    assert response.json()["title"] == payload["title"]
    assert len(response.json()["tags"]) == MAX_TAGS


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({}, "title", id="missing-title"),
        pytest.param({"body": "no title"}, "title", id="only-body"),
        pytest.param({"title": "a", "colour": "red"}, "colour", id="extra-field"),
        pytest.param({"title": 5}, "title", id="title-number"),
        pytest.param({"title": None}, "title", id="title-null"),
        pytest.param({"title": ["a"]}, "title", id="title-list"),
        pytest.param({"title": "a", "body": 5}, "body", id="body-number"),
        pytest.param({"title": "a", "tags": "home"}, "tags", id="tags-string"),
        pytest.param({"title": "a", "tags": [1]}, "tags.0", id="tag-number"),
        pytest.param({"title": "a", "tags": [None]}, "tags.0", id="tag-null"),
        pytest.param({"title": ""}, "title", id="title-empty"),
        pytest.param({"title": " \t\n "}, "title", id="title-whitespace"),
        pytest.param({"title": "t" * (TITLE_MAX_LENGTH + 1)}, "title", id="title-too-long"),
        pytest.param(
            {"title": "a", "body": "b" * (BODY_MAX_LENGTH + 1)}, "body", id="body-too-long"
        ),
        pytest.param(
            {"title": "a", "tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "tags", id="21-tags"
        ),
        pytest.param(
            {"title": "a", "tags": ["t" * (TAG_MAX_LENGTH + 1)]}, "tags.0", id="tag-too-long"
        ),
        pytest.param({"title": "a", "tags": ["  "]}, "tags.0", id="tag-whitespace"),
        pytest.param({"title": "a\u0000b"}, "title", id="nul-in-title"),
        pytest.param({"title": "a", "body": "b\u0000"}, "body", id="nul-in-body"),
        pytest.param({"title": "a", "tags": ["ok", "t\u0000"]}, "tags.1", id="nul-in-tag"),
        pytest.param(["title", "a"], "request", id="array-not-object"),
    ],
)
def test_bad_create_is_422_naming_the_field(api, payload, field):
    response = api.send("POST", NOTES_URL, json=payload)

    body = json_error(response, 422)
    assert field in fields_named(body)
    assert field in body["detail"]
    assert not Note.objects.exists()


@pytest.mark.parametrize(
    "raw", [b'{"title": "unterminated', b"{'title': 'single quotes'}", b"title=form-encoded"]
)
def test_malformed_json_is_400_saying_so(api, raw):
    response = api.post(NOTES_URL, data=raw, content_type="application/json")

    assert json_error(response, 400)["detail"].startswith("Request body is not valid JSON")
    assert not Note.objects.exists()


def test_empty_body_is_422(api):
    response = api.post(NOTES_URL, data=b"", content_type="application/json")

    assert fields_named(json_error(response, 422)) == ["request"]
    assert not Note.objects.exists()


def test_body_over_the_size_limit_is_413(api):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    payload = {"title": "big", "body": "x" * limit}

    response = api.send("POST", NOTES_URL, json=payload)

    assert str(limit) in json_error(response, 413)["detail"]
    assert not Note.objects.exists()


def test_create_needs_a_token(anonymous):
    json_error(anonymous.send("POST", NOTES_URL, json={"title": "a"}), 401)
    assert not Note.objects.exists()


# -- List, filter, search ----------------------------------------------------------------------


def test_list_is_newest_first_and_only_the_callers(api, make_notes, other_user):
    ids = make_notes(3)
    make_notes(2, owner=other_user)

    response = api.get(NOTES_URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [note["id"] for note in body["items"]] == ids[::-1]
    assert body["next"] is None


def test_list_filters_by_tag(api, user):
    work = note_create(owner=user, title="standup", body="", tags=["work", "daily"])
    note_create(owner=user, title="groceries", body="", tags=["home"])

    response = api.get(f"{NOTES_URL}?tag=work")

    assert response.status_code == 200, response.content
    assert [note["id"] for note in response.json()["items"]] == [work.pk]


def test_search_uses_english_stemming(api, user):
    running = note_create(owner=user, title="Morning", body="I went running today", tags=[])
    note_create(owner=user, title="Evening", body="I read a book", tags=[])

    response = api.get(f"{NOTES_URL}?q=run")

    assert response.status_code == 200, response.content
    assert [note["id"] for note in response.json()["items"]] == [running.pk]


def test_search_matches_titles_and_combines_with_tag(api, user):
    tagged = note_create(owner=user, title="Budget meeting", body="", tags=["work"])
    note_create(owner=user, title="Budget at home", body="", tags=["home"])

    response = api.get(f"{NOTES_URL}?q=budgets&tag=work")

    assert [note["id"] for note in response.json()["items"]] == [tagged.pk]


def test_search_does_not_see_other_users_notes(api, other_user):
    note_create(owner=other_user, title="running", body="", tags=[])

    assert api.get(f"{NOTES_URL}?q=run").json() == {"items": [], "next": None}


@pytest.mark.parametrize("q", ['"unbalanced', "a & | ! b", "or", "(((", "'; DROP TABLE"])
def test_search_syntax_never_errors(api, user, q):
    note_create(owner=user, title="anything", body="", tags=[])

    response = api.get(NOTES_URL, {"q": q})

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(("minus_signs", "found"), [(41, "walking"), (40, "running")])
def test_a_long_run_of_minus_signs_is_still_negation(api, user, minus_signs, found):
    # More than 32 in a row were "tsquery stack too small", a 500; NOT NOT x is x.
    for title in ("running", "walking"):
        note_create(owner=user, title=title, body="", tags=[])

    response = api.get(NOTES_URL, {"q": "-" * minus_signs + "run"})

    assert response.status_code == 200, response.content
    assert [note["title"] for note in response.json()["items"]] == [found]


# -- Pagination ---------------------------------------------------------------------------------


def test_limit_defaults_to_20(api, make_notes):
    ids = make_notes(25)

    body = api.get(NOTES_URL).json()

    assert [note["id"] for note in body["items"]] == ids[::-1][:20]
    assert body["next"]


def test_limit_100_is_allowed(api, make_notes):
    make_notes(3)

    response = api.get(f"{NOTES_URL}?limit=100")

    assert response.status_code == 200, response.content
    assert len(response.json()["items"]) == 3


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", str(2**70)])
def test_bad_limit_is_422_naming_limit(api, limit):
    body = json_error(api.get(f"{NOTES_URL}?limit={limit}"), 422)

    assert fields_named(body) == ["limit"]


def test_cursor_walks_every_note_exactly_once(api, make_notes):
    ids = make_notes(7)

    seen, pages = walk(api, "limit=3")

    assert seen == ids[::-1]
    assert pages == 3


def test_cursor_pages_with_a_tag_filter(api, user, make_notes):
    tagged = [note_create(owner=user, title=f"t{i}", body="", tags=["x"]).pk for i in range(5)]
    make_notes(5)

    seen, _ = walk(api, "limit=2&tag=x")

    assert seen == tagged[::-1]


def test_cursor_is_stable_under_concurrent_inserts(api, make_notes):
    ids = make_notes(10)
    inserted = []

    seen, pages = walk(
        api, "limit=3", between_pages=lambda: inserted.extend(make_notes(2, prefix="new"))
    )

    assert seen == ids[::-1]  # nothing skipped, nothing repeated, in order
    assert not set(seen) & set(inserted)  # newer notes stay on the first page, not later ones
    assert pages == 4


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "é", "a" * 200])
def test_invalid_cursor_is_400_naming_cursor(api, make_notes, cursor):
    make_notes(2)

    response = api.get(NOTES_URL, {"cursor": cursor})

    assert json_error(response, 400)["detail"].startswith("cursor:")


@pytest.mark.parametrize(
    "decoded",
    [
        "not a cursor",
        "2024-01-01T00:00:00|1",  # no time zone
        "2024-01-01T00:00:00+00:00|one",
        f"2024-01-01T00:00:00+00:00|{2**70}",  # beyond bigint: PostgreSQL would refuse it
        "9999-12-31T23:59:59-23:59|1",  # after the year 9999 in UTC
    ],
)
def test_forged_cursor_is_400_naming_cursor(api, make_notes, decoded):
    make_notes(2)

    response = api.get(NOTES_URL, {"cursor": b64(decoded)})

    assert json_error(response, 400)["detail"].startswith("cursor:")
    assert api.get(NOTES_URL).status_code == 200  # and the connection is still usable


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"cursor": "a\u0000"}, "cursor"),
        ({"cursor": "a" * 201}, "cursor"),
        ({"tag": "a\u0000"}, "tag"),
        ({"q": "run\u0000"}, "q"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_query_text_is_422_naming_it(api, query, field):
    body = json_error(api.get(NOTES_URL, query), 422)

    assert fields_named(body) == [field]


# -- One note: read, change, delete -------------------------------------------------------------


@pytest.fixture
def note(user):
    return note_create(owner=user, title="Original", body="first body", tags=["a", "b"])


def test_get_own_note(api, note):
    response = api.get(f"{NOTES_URL}/{note.pk}")

    assert response.status_code == 200, response.content
    assert response.json()["id"] == note.pk
    assert response.json()["title"] == "Original"
    assert response.json()["tags"] == ["a", "b"]


def test_patch_changes_only_sent_fields_and_bumps_updated(api, note):
    before = api.get(f"{NOTES_URL}/{note.pk}").json()

    response = api.send("PATCH", f"{NOTES_URL}/{note.pk}", json={"title": "Renamed"})

    assert response.status_code == 200, response.content
    after = response.json()
    assert after["title"] == "Renamed"
    assert after["body"] == before["body"]
    assert after["tags"] == before["tags"]
    assert after["created"] == before["created"]
    assert datetime.fromisoformat(after["updated"]) > datetime.fromisoformat(before["updated"])
    assert api.get(f"{NOTES_URL}/{note.pk}").json() == after


def test_patch_can_clear_body_and_tags(api, note):
    response = api.send("PATCH", f"{NOTES_URL}/{note.pk}", json={"body": "", "tags": []})

    assert response.status_code == 200, response.content
    assert (response.json()["title"], response.json()["body"], response.json()["tags"]) == (
        "Original",
        "",
        [],
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": None}, "title"),
        ({"body": None}, "body"),
        ({"tags": None}, "tags"),
        ({"title": "   "}, "title"),
        ({"title": "x\u0000"}, "title"),
        ({"tags": ["t" * (TAG_MAX_LENGTH + 1)]}, "tags.0"),
        ({"owner": 2}, "owner"),
        ({"id": 99}, "id"),
    ],
)
def test_bad_patch_is_422_and_changes_nothing(api, note, payload, field):
    response = api.send("PATCH", f"{NOTES_URL}/{note.pk}", json=payload)

    assert field in fields_named(json_error(response, 422))
    unchanged = Note.objects.get(pk=note.pk)
    assert (unchanged.title, unchanged.body, unchanged.tags) == (
        "Original",
        "first body",
        ["a", "b"],
    )


def test_delete_own_note(api, note):
    response = api.delete(f"{NOTES_URL}/{note.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Note.objects.filter(pk=note.pk).exists()
    json_error(api.get(f"{NOTES_URL}/{note.pk}"), 404)


@pytest.mark.parametrize(
    ("method", "payload"), [("GET", None), ("PATCH", {"title": "stolen"}), ("DELETE", None)]
)
def test_another_users_note_is_404_and_left_intact(client_for, other_user, note, method, payload):
    response = client_for(other_user).send(method, f"{NOTES_URL}/{note.pk}", json=payload)

    assert json_error(response, 404) == {"detail": "Not found."}
    intact = Note.objects.get(pk=note.pk)
    assert (intact.title, intact.body, intact.tags) == ("Original", "first body", ["a", "b"])


@pytest.mark.parametrize(
    ("method", "payload"), [("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)]
)
def test_missing_note_is_404(api, note, method, payload):
    response = api.send(method, f"{NOTES_URL}/{note.pk + 1000}", json=payload)

    assert json_error(response, 404) == {"detail": "Not found."}


@pytest.mark.parametrize("note_id", ["abc", "1.5", "0", "-1", "1e3", str(2**63), str(2**70)])
@pytest.mark.parametrize(
    ("method", "payload"), [("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)]
)
def test_bad_note_id_is_422_not_500(api, note, note_id, method, payload):
    response = api.send(method, f"{NOTES_URL}/{note_id}", json=payload)

    assert fields_named(json_error(response, 422)) == ["note_id"]
    assert Note.objects.filter(pk=note.pk).exists()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", f"{NOTES_URL}/1", "DELETE, GET, PATCH"),
        ("POST", f"{NOTES_URL}/1", "DELETE, GET, PATCH"),
        ("DELETE", NOTES_URL, "GET, POST"),
        ("PATCH", NOTES_URL, "GET, POST"),
        ("GET", "/api/v1/auth/token", "DELETE, POST"),
    ],
)
def test_wrong_method_is_405_json(api, method, path, allowed):
    response = api.send(method, path, json={})

    assert method in json_error(response, 405)["detail"]
    assert set(response["Allow"].split(", ")) == set(allowed.split(", "))
