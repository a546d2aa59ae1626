"""The benchmark's check that a configuration answers read-one as the app does (bench/answers.py),
against small real HTTP servers: one that answers as the app does, and the ways a peer can be
wrong while wrk would still count its answers."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.answers import check_read_one
from bench.errors import BenchError

TOKEN, NOTE_ID, TITLE, FOREIGN_ID = "kn_caller", 7, "The caller's note", 9


def as_the_app(path: str, authorization: str | None) -> tuple[int, dict]:
    if authorization != f"Bearer {TOKEN}":
        return 401, {"detail": "Unauthorized"}
    if path == f"/api/v1/notes/{NOTE_ID}":
        return 200, {"id": NOTE_ID, "title": TITLE, "body": ""}
    return 404, {"detail": "Not Found"}


def without_auth(path: str, authorization: str | None) -> tuple[int, dict]:
    """Serves the note whoever asks."""
    return as_the_app(path, f"Bearer {TOKEN}")


def without_owner(path: str, authorization: str | None) -> tuple[int, dict]:
    """Checks the token, then serves any note by id."""
    status, body = as_the_app(path, authorization)
    if status == 404:
        return 200, {"id": FOREIGN_ID, "title": "Someone else's"}
    return status, body


def wrong_note(path: str, authorization: str | None) -> tuple[int, dict]:
    status, body = as_the_app(path, authorization)
    return status, {**body, "title": "Another title"} if status == 200 else body


def refusing_everyone(path: str, authorization: str | None) -> tuple[int, dict]:
    return 401, {"detail": "Unauthorized"}


@contextmanager
def serving(answer) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answer(self.path, self.headers.get("Authorization"))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def check(url: str, foreign_id: int | None = FOREIGN_ID) -> dict:
    return check_read_one(
        "peer", url, token=TOKEN, note_id=NOTE_ID, title=TITLE, foreign_id=foreign_id
    )


def test_a_configuration_that_answers_as_the_app_passes_with_its_statuses():
    with serving(as_the_app) as url:
        assert check(url) == {"read_one": 200, "without_token": 401, "another_users_note": 404}
        assert check(url, foreign_id=None)["another_users_note"] is None


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (refusing_everyone, "with 401"),
        (wrong_note, "Another title"),
        (without_auth, "200 without a token"),
        (without_owner, "200 for another user's note"),
    ],
)
def test_a_configuration_that_answers_otherwise_stops_the_run(answer, says):
    with serving(answer) as url, pytest.raises(BenchError) as refused:
        check(url)
    assert "peer answered" in str(refused.value) and says in str(refused.value)
