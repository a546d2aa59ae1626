"""Bad input on every endpoint: always a 4xx in JSON that says what is wrong, never a 500.

Field-by-field validation of notes and credentials is in test_api_notes.py and test_api_auth.py;
this file runs the same kinds of bad input across every endpoint that can receive them.
"""

import json
import logging

import orjson
import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction

from accounts.models import ApiToken
from config.api import on_database_error
from notes.models import Note
from notes.services import note_create
from tests.support.api import PASSWORD, ApiClient
from tests.support.errors import json_error
from tests.support.permissions import grant

pytestmark = pytest.mark.django_db

NOTES_URL = "/api/v1/notes"
TOKEN_URL = "/api/v1/auth/token"
TOKENS_URL = "/api/v1/auth/tokens"
NUL_MESSAGE = "must not contain NUL characters"


@pytest.fixture
def note(user):
    return note_create(owner=user, title="Original", body="first body", tags=["a"])


@pytest.fixture
def staff_api(client_for, make_user):
    staff = make_user("staff", is_staff=True)
    grant(staff, "auth.view_user")  # who may list users: the input is checked past that
    return client_for(staff)


# Every endpoint that reads a JSON body, with a body it would accept.
BODY_ENDPOINTS = [
    pytest.param("POST", TOKEN_URL, {"username": "alice", "password": PASSWORD}, id="token"),
    pytest.param("POST", NOTES_URL, {"title": "fine"}, id="create-note"),
    pytest.param("PATCH", f"{NOTES_URL}/{{note}}", {"title": "fine"}, id="patch-note"),
]
# Every endpoint that reads query parameters, with the client allowed to call it.
# A value far over any field's length, in a URL still short enough for the app to read (a longer
# one is a 414 before any field is looked at: tests/system/test_fuzz_http.py).
LONG_BUT_WITHIN_MAX_URL_BYTES = settings.MAX_URL_BYTES - 1024
QUERY_ENDPOINTS = [
    pytest.param("api", NOTES_URL, id="notes"),
    pytest.param("staff_api", "/api/v1/users", id="users"),
    pytest.param("api", TOKENS_URL, id="tokens"),
]


def send(api, method: str, path: str, note, **kwargs):
    return getattr(api, method.lower())(path.format(note=note.pk), **kwargs)


def fields_named(body: dict) -> list[str]:
    return [error["field"] for error in body["errors"]]


def nothing_changed(note) -> bool:
    note.refresh_from_db()
    return (
        Note.objects.count() == 1
        and (note.title, note.body, note.tags) == ("Original", "first body", ["a"])
        and ApiToken.objects.count() == 1  # the test's own
    )


# -- Bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "_valid"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"title": ', id="truncated"),
        pytest.param(b"{'title': 'single quotes'}", id="single-quotes"),
        pytest.param(b'{"title": NaN}', id="nan"),
        pytest.param(b'{"title": "\xff\xfe"}', id="invalid-utf8"),
        pytest.param(b'\xef\xbb\xbf{"title": "bom"}', id="byte-order-mark"),
        pytest.param(b"[" * 2000 + b"]" * 2000, id="nested-2000-deep"),
    ],
)
def test_a_body_that_is_not_json_is_400(api, note, method, path, _valid, raw):
    response = send(api, method, path, note, data=raw, content_type="application/json")

    assert json_error(response, 400)["detail"].startswith("Request body is not valid JSON")
    assert nothing_changed(note)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "application/xml", "multipart/form-data"],
)
def test_a_body_that_is_not_declared_json_is_415(api, note, method, path, valid, content_type):
    response = send(api, method, path, note, data=json.dumps(valid), content_type=content_type)

    detail = json_error(response, 415)["detail"]
    assert "Content-Type must be application/json" in detail
    assert content_type in detail
    assert nothing_changed(note)


@pytest.mark.parametrize(("method", "path", "_valid"), BODY_ENDPOINTS)
def test_a_body_without_a_content_type_is_415(api, note, method, path, _valid):
    response = api.generic(method, path.format(note=note.pk), b'{"title": "x"}')

    assert "Content-Type" in json_error(response, 415)["detail"]


@pytest.mark.parametrize(("method", "path", "_valid"), BODY_ENDPOINTS)
def test_json_with_a_charset_parameter_is_accepted(api, note, method, path, _valid):
    body = json.dumps(_valid)

    response = send(
        api, method, path, note, data=body, content_type="application/json; charset=utf-8"
    )

    assert response.status_code in (200, 201), response.content


@pytest.mark.parametrize(("method", "path", "_valid"), BODY_ENDPOINTS)
@pytest.mark.parametrize("raw", [b"null", b"[]", b'"title"', b"42", b"true"])
def test_json_that_is_not_an_object_is_422(api, note, method, path, _valid, raw):
    response = send(api, method, path, note, data=raw, content_type="application/json")

    assert "request" in fields_named(json_error(response, 422))
    assert nothing_changed(note)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_ENDPOINTS)
def test_a_body_over_the_limit_is_413_on_every_endpoint(api, note, method, path, valid):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    oversized = {**valid, "padding": "x" * limit}

    response = api.send(method, path.format(note=note.pk), json=oversized)

    assert str(limit) in json_error(response, 413)["detail"]
    assert nothing_changed(note)


@pytest.mark.parametrize(("method", "path", "_valid"), BODY_ENDPOINTS)
def test_a_chunked_body_without_content_length_is_411(api, note, method, path, _valid):
    # What gunicorn and granian hand on for `Transfer-Encoding: chunked`: no CONTENT_LENGTH, so
    # Django would read the body as empty (tests/system/test_http_edges.py sends it for real).
    response = api.generic(
        method, path.format(note=note.pk), content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    )  # fmt: skip

    assert "Content-Length" in json_error(response, 411)["detail"]
    assert nothing_changed(note)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_ENDPOINTS)
def test_an_extra_field_is_422_naming_it(api, note, method, path, valid):
    response = api.send(method, path.format(note=note.pk), json={**valid, "is_staff": True})

    assert fields_named(json_error(response, 422)) == ["is_staff"]
    assert nothing_changed(note)


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    [
        ("POST", TOKEN_URL, {"username": "ali\x00ce", "password": PASSWORD}, "username"),
        ("POST", TOKEN_URL, {"username": "alice", "password": "pass\x00"}, "password"),
        ("POST", NOTES_URL, {"title": "a\x00b"}, "title"),
        ("POST", NOTES_URL, {"title": " \x00 "}, "title"),
        ("POST", NOTES_URL, {"title": "a", "body": "b\x00"}, "body"),
        ("POST", NOTES_URL, {"title": "a", "tags": ["ok", "t\x00"]}, "tags.1"),
        ("PATCH", f"{NOTES_URL}/{{note}}", {"title": "\x00"}, "title"),
        ("PATCH", f"{NOTES_URL}/{{note}}", {"body": "\x00"}, "body"),
        ("PATCH", f"{NOTES_URL}/{{note}}", {"tags": ["\x00"]}, "tags.0"),
    ],
)
def test_nul_in_any_text_is_422_saying_so_and_naming_the_field(
    api, note, method, path, payload, field
):
    response = api.send(method, path.format(note=note.pk), json=payload)

    body = json_error(response, 422)
    assert body["errors"] == [
        {"field": field, "message": NUL_MESSAGE, "type": "string_pattern_mismatch"}
    ]
    assert body["detail"] == f"Invalid input: {field}: {NUL_MESSAGE}"
    assert nothing_changed(note)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "", "password": ""}, "password"),
        ({"username": "alice", "password": None}, "password"),
        ({"username": "alice", "password": ["a"]}, "password"),
        ({"username": {"$ne": ""}, "password": PASSWORD}, "username"),
        ({"username": "a" * 201, "password": PASSWORD}, "username"),
        ({"username": "alice", "password": "p" * 201}, "password"),
    ],
)
def test_bad_credentials_are_422_naming_the_field(anonymous, user, payload, field):
    response = anonymous.send("POST", TOKEN_URL, json=payload)

    assert field in fields_named(json_error(response, 422))
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "username", ["alice' OR '1'='1", "alice'--", 'alice"; DROP TABLE auth_user; --', "%", "_"]
)
def test_sql_looking_usernames_are_only_wrong_credentials(anonymous, user, username):
    response = anonymous.send("POST", TOKEN_URL, json={"username": username, "password": "x"})

    assert json_error(response, 401) == {"detail": "Invalid username or password."}


# -- Query strings -------------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "path"), QUERY_ENDPOINTS)
@pytest.mark.parametrize(
    "limit", ["-1", "0", "101", "-9223372036854775809", "9" * 5000, "1e3", "ten", "", "%00"]
)
def test_a_bad_limit_is_422_naming_it(request, client, path, limit):
    response = request.getfixturevalue(client).get(f"{path}?limit={limit}")

    assert fields_named(json_error(response, 422)) == ["limit"]


@pytest.mark.parametrize(("client", "path"), QUERY_ENDPOINTS)
@pytest.mark.parametrize("cursor", ["-1", "1.5", "abc", str(2**63), "9" * 5000, "' OR 1=1 --"])
def test_a_bad_cursor_is_a_4xx_naming_it(request, client, path, cursor):
    response = request.getfixturevalue(client).get(path, {"cursor": cursor})

    body = json_error(response)
    assert "cursor" in (fields_named(body) if "errors" in body else body["detail"])


@pytest.mark.parametrize(("client", "path"), QUERY_ENDPOINTS)
@pytest.mark.parametrize("parameter", ["limit", "cursor", "q"])
def test_invalid_utf8_in_the_query_is_422_naming_the_parameter(request, client, path, parameter):
    response = request.getfixturevalue(client).get(f"{path}?{parameter}=%ff%fe")

    body = json_error(response, 422)
    assert body["errors"][0] == {
        "field": parameter,
        "message": "is not valid UTF-8",
        "type": "unicode_error",
    }


@pytest.mark.parametrize(("client", "path"), QUERY_ENDPOINTS)
def test_too_many_query_parameters_is_400(request, client, path):
    many = "&".join(f"p{number}=1" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    response = request.getfixturevalue(client).get(f"{path}?{many}")

    assert "Too many parameters" in json_error(response, 400)["detail"]


@pytest.mark.parametrize(("client", "path"), QUERY_ENDPOINTS)
def test_a_huge_query_string_is_a_4xx(request, client, path):
    huge = "7" * LONG_BUT_WITHIN_MAX_URL_BYTES
    response = request.getfixturevalue(client).get(f"{path}?cursor={huge}")

    assert fields_named(json_error(response)) == ["cursor"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"q": "x" * LONG_BUT_WITHIN_MAX_URL_BYTES}, "q"),
        ({"tag": "t" * LONG_BUT_WITHIN_MAX_URL_BYTES}, "tag"),
        ({"q": "run\x00"}, "q"),
    ],
)
def test_huge_or_nul_search_text_is_422_naming_it(api, query, field):
    body = json_error(api.get(NOTES_URL, query), 422)

    assert fields_named(body) == [field]


@pytest.mark.parametrize(
    "text",
    [
        "' OR '1'='1",
        "'; DROP TABLE notes_note; --",
        "1; SELECT pg_sleep(10)",
        "%' UNION SELECT password FROM auth_user --",
        "\\' \\\\ \\x00",
        "title:* & !body | (a <-> b)",
    ],
)
@pytest.mark.parametrize("parameter", ["q", "tag"])
def test_sql_looking_search_text_finds_nothing_and_harms_nothing(api, note, parameter, text):
    response = api.get(NOTES_URL, {parameter: text})

    assert response.status_code == 200, response.content
    assert response.json() == {"items": [], "next": None}
    assert nothing_changed(note)


@pytest.mark.parametrize(
    "text",
    [
        "-" * 60,  # once "tsquery stack too small", a 500 with a traceback
        "x " + "-" * 40 + "y",
        "or " + "-" * 35,
        "-(" * 100,
        "!-" * 100,
        '"x"' + "-" * 40 + "y",
        "- " * 100,
    ],
)
def test_search_text_postgresql_cannot_parse_as_is_is_still_searched(api, note, text):
    response = api.get(NOTES_URL, {"q": text})

    assert response.status_code == 200, response.content
    assert response.json() == {"items": [], "next": None}


def test_a_search_postgresql_refuses_anyway_is_400_naming_q_without_a_traceback(
    api, note, monkeypatch, caplog
):
    # As if search_text missed a case: PostgreSQL's refusal reaches the selector.
    monkeypatch.setattr("notes.selectors.search_text", lambda text: text)

    response = api.get(NOTES_URL, {"q": "-" * 60})

    assert json_error(response, 400)["detail"].startswith("q: ")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_database_limit_is_400_not_503(rf):
    # SQLSTATE class 54 (program_limit_exceeded) is the request's doing: retrying cannot help.
    with pytest.raises(OperationalError) as raised, transaction.atomic(), connection.cursor() as c:
        c.execute("SELECT repeat('x', 3000)::tsquery")  # "word is too long in tsquery"

    response = on_database_error(rf.get(NOTES_URL), raised.value)

    assert response.status_code == 400
    assert "limit of the database" in orjson.loads(response.content)["detail"]
    assert "Retry-After" not in response


# -- Ids in the path -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id", ["abc", "0", "-1", "1.5", "1e3", str(2**63), "9" * 5000, "1%00", "%ff", "1;DROP"]
)
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"{NOTES_URL}/{{id}}", "note_id"),
        ("PATCH", f"{NOTES_URL}/{{id}}", "note_id"),
        ("DELETE", f"{NOTES_URL}/{{id}}", "note_id"),
        ("DELETE", f"{TOKENS_URL}/{{id}}", "token_id"),
    ],
)
def test_a_bad_id_is_422_naming_it(api, note, method, path, field, bad_id):
    response = api.send(method, path.format(id=bad_id), json={"title": "x"})

    assert fields_named(json_error(response, 422)) == [field]
    assert nothing_changed(note)


# -- Headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["Bearer " + "x" * 100_000, "Bearer kn_\xff\xfe", "Bearer ' OR 1=1 --", "Bearer\tkn_x"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("GET", NOTES_URL),
        ("DELETE", TOKEN_URL),
        ("GET", TOKENS_URL),
        ("GET", "/api/v1/users"),
    ],
)
def test_a_garbage_bearer_token_is_401(user, method, path, authorization):
    client = ApiClient()

    response = client.generic(method, path, headers={"Authorization": authorization})

    assert json_error(response, 401) == {"detail": "Unauthorized"}
