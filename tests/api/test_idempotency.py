"""`Idempotency-Key` on POST /api/v1/notes: a client that retries never creates a second note."""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idempotency.models import IdempotencyKey
from notes.models import Note
from tests.support.api import ApiClient
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

NOTES_URL = "/api/v1/notes"
KEY = "5f0c8a4e-2b1d-4c6e-9a53-0d1e2f3a4b5c"


def post(client: ApiClient, payload: dict, key: str | None = KEY):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.send("POST", NOTES_URL, json=payload, headers=headers)


def test_a_retry_with_the_same_key_replays_the_first_answer(api, user):
    first = post(api, {"title": "once", "tags": ["a"]})
    retry = post(api, {"title": "once", "tags": ["a"]})

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert retry.status_code == 201, retry.content
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json(), "the same body, byte for byte once parsed"
    assert list(Note.objects.filter(owner=user).values_list("title", flat=True)) == ["once"]


def test_the_first_answer_is_replayed_even_after_the_note_changed(api):
    first = post(api, {"title": "original"})
    api.send("PATCH", f"{NOTES_URL}/{first.json()['id']}", json={"title": "renamed"})

    retry = post(api, {"title": "original"})

    assert retry.json()["title"] == "original", "what the lost response said, not a new read"
    assert Note.objects.count() == 1


def test_negative_control_without_a_key_every_post_creates_a_note(api):
    post(api, {"title": "twice"}, key=None)
    post(api, {"title": "twice"}, key=None)
    assert Note.objects.filter(title="twice").count() == 2


def test_the_same_key_with_another_body_is_refused_and_writes_nothing(api):
    post(api, {"title": "first"})

    reused = post(api, {"title": "second"})

    body = json_error(reused, 422)
    assert "Idempotency-Key" in body["detail"]
    assert list(Note.objects.values_list("title", flat=True)) == ["first"]


def test_keys_belong_to_their_owner(api, client_for, other_user):
    mine = post(api, {"title": "mine"})
    theirs = post(client_for(other_user), {"title": "mine"})

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != mine.json()["id"]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="too-long"),
        pytest.param("caf\u00e9", id="not-ascii"),
        pytest.param("tab\there", id="control-character"),
    ],
)
def test_a_malformed_key_is_a_400_naming_the_header(api, key):
    response = post(api, {"title": "not stored"}, key=key)

    assert "Idempotency-Key" in json_error(response, 400)["detail"]
    assert not Note.objects.exists()


def test_the_longest_key_and_printable_punctuation_are_accepted(api):
    assert post(api, {"title": "long"}, key="k" * 255).status_code == 201
    assert post(api, {"title": "odd"}, key="a b~!{}\"'").status_code == 201


def schema_key_pattern(client) -> str:
    operation = client.get("/api/openapi.json").json()["paths"][NOTES_URL]["post"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    return header["schema"]["pattern"]


@given(key=st.data())
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_every_key_the_schema_calls_valid_is_accepted(api, key):
    pattern = schema_key_pattern(api)
    drawn = key.draw(st.from_regex(pattern, fullmatch=True))

    response = post(api, {"title": "schema-valid key"}, key=drawn)

    assert response.status_code == 201, (drawn, response.content)


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "tab\there", " padded", "padded "])
def test_the_schema_refuses_the_keys_the_server_refuses_or_http_strips(api, key):
    assert re.fullmatch(schema_key_pattern(api), key) is None


def test_an_expired_key_is_free_again_and_the_purge_command_clears_old_keys(api, user):
    post(api, {"title": "yesterday"})
    a_day_ago = IdempotencyKey.objects.get().created - timedelta(hours=25)
    IdempotencyKey.objects.update(created=a_day_ago)

    again = post(api, {"title": "today"})

    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert sorted(Note.objects.values_list("title", flat=True)) == ["today", "yesterday"]
    assert IdempotencyKey.objects.get().response_body["title"] == "today", "old record replaced"

    post(api, {"title": "another"}, key="another-key")
    IdempotencyKey.objects.filter(key="another-key").update(
        created=IdempotencyKey.objects.get(key=KEY).created - timedelta(days=2)
    )
    call_command("purge_idempotency_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [KEY]


def test_the_key_and_the_note_are_one_transaction(api):
    """A failure while storing the key (a real PostgreSQL error) leaves no note behind either."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_key() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'simulated failure after the note was written'; END $$;
            CREATE TRIGGER refuse_key BEFORE INSERT ON idempotency_idempotencykey
            FOR EACH ROW EXECUTE FUNCTION refuse_key();
            """
        )
    with pytest.raises(DatabaseError, match="simulated failure"):
        post(api, {"title": "half-written"})
    assert not Note.objects.filter(title="half-written").exists()
    assert not IdempotencyKey.objects.exists()


def test_the_header_is_in_the_openapi_schema(client):
    schema = client.get("/api/openapi.json").json()
    parameters = schema["paths"]["/api/v1/notes"]["post"]["parameters"]
    header = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and not header.get("required")


# -- Concurrent duplicates ------------------------------------------------------------------


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            # pg_locks, not pg_stat_activity: that one is a snapshot, frozen for a transaction.
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def _post_all_at_once(make_client, count: int, key: str | None) -> list:
    """`count` identical POSTs, each in its own thread and connection, all past their first
    look-up for the key before any may write: the table is locked against writes until then."""
    responses: list = [None] * count

    def send(index: int) -> None:
        try:
            responses[index] = post(make_client(), {"title": "raced"}, key=key)
        finally:
            connections.close_all()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE idempotency_idempotencykey, notes_note IN SHARE MODE")
        threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while _waiting_on_locks() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_on_locks() == count, "every request is past its look-up and waiting"
    for thread in threads:
        thread.join(timeout=30)
    return responses


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_note(client_for, user):
    raced = _post_all_at_once(lambda: client_for(user), 6, KEY)

    assert [response.status_code for response in raced] == [201] * 6
    assert len({response.json()["id"] for response in raced}) == 1
    assert sum(response.has_header("Idempotent-Replayed") for response in raced) == 5
    assert Note.objects.filter(title="raced").count() == 1

    # Negative control: the same race without a key writes every request.
    _post_all_at_once(lambda: client_for(user), 6, None)
    assert Note.objects.filter(title="raced").count() == 1 + 6
