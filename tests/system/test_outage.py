"""Database outages, for real: `serve` against a PostgreSQL that the test stops and starts.

While PostgreSQL is away the app stays up: /healthz answers 200, /readyz and the API answer 503
in JSON (with Retry-After), the landing page says so. When it is back, the app recovers on its
own, without a restart. At start-up, a database that comes up during the wait is picked up.
"""

import http.client
import json
import threading
import time
from pathlib import Path

import pytest

from pgembedded.postgres import EmbeddedPostgres
from tests.support.databases import SECRET_KEY, database_url
from tests.support.processes import Server


def call(port: int, method: str, path: str, token: str = "", body=None, headers=None):
    """One request; returns the status, the response, and the body (parsed when JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    content_type = response.getheader("Content-Type", "")
    parsed = json.loads(raw) if content_type.startswith("application/json") else raw.decode()
    return response.status, response, parsed


@pytest.fixture
def database(tmp_path):
    """A PostgreSQL of the test's own, initialised and stopped; the test starts it."""
    server = EmbeddedPostgres(tmp_path / "db")
    server.ensure_running()
    server.leave()
    assert server.running_pid() is None
    yield server
    pid = server.running_pid()
    if pid is not None:
        EmbeddedPostgres(server.data_dir).stop()


def start(database: EmbeddedPostgres) -> EmbeddedPostgres:
    """Start the test's PostgreSQL; the caller `leave()`s the returned handle to stop it."""
    handle = EmbeddedPostgres(database.data_dir)
    handle.ensure_running()
    return handle


def serve(tmp_path: Path, database: EmbeddedPostgres, **extra: str) -> Server:
    return Server(
        tmp_path / "app",
        DATABASE_URL=database_url(database),
        DJANGO_SECRET_KEY=SECRET_KEY,
        **extra,
    )


def test_a_database_that_comes_up_during_the_start_up_wait_is_picked_up(tmp_path, database):
    handles = []

    def start_once_serve_waits() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any("Waiting for the database" in log.read_text() for log in tmp_path.glob("*.log")):
                handles.append(start(database))
                return
            time.sleep(0.05)

    starter = threading.Thread(target=start_once_serve_waits)
    starter.start()
    try:
        server = serve(tmp_path, database, DB_WAIT_TIMEOUT="30")
        assert handles, "PostgreSQL was started only once serve was waiting for it"
        assert "Ready to serve" in server.log.read_text()
        status, _, ready = call(server.port, "GET", "/readyz")
        assert (status, ready["database"], ready["migrations"]) == (200, "ok", "applied")
        assert server.stop() == 0
    finally:
        starter.join()
        for handle in handles:
            handle.leave()


def test_the_app_answers_503_while_the_database_is_away_and_recovers_by_itself(tmp_path, database):
    handle = start(database)
    server = serve(tmp_path, database)
    token = server.token()
    status, _, kept = call(server.port, "POST", "/api/v1/notes", token, {"title": "kept"})
    assert status == 201

    handle.leave()  # the last user out: PostgreSQL stops (a fast shutdown)
    assert database.running_pid() is None

    # Enough requests to reach both workers and several of their threads.
    for _ in range(6):
        assert call(server.port, "GET", "/healthz")[0] == 200, "the process itself is fine"

        status, _, ready = call(server.port, "GET", "/readyz")
        assert (status, ready["status"], ready["database"]) == (503, "unavailable", "unavailable")

        for method, path, body in [
            ("GET", "/api/v1/notes", None),
            ("GET", f"/api/v1/notes/{kept['id']}", None),
            ("POST", "/api/v1/notes", {"title": "refused"}),
            ("GET", "/api/v1/me", None),
        ]:
            status, response, error = call(server.port, method, path, token, body)
            assert status == 503, (method, path, error)
            assert error["detail"] == "The database is unavailable; try again shortly."
            assert response.getheader("Retry-After") == "5"

        status, response, page = call(server.port, "GET", "/")
        assert status == 200 and "unavailable" in page, "the landing page says what is wrong"
        # A logged-in admin's session is in the database: a 503 page, not a "server error".
        cookie = {"Cookie": "sessionid=an-admin-session-that-cannot-be-looked-up"}
        status, response, page = call(server.port, "GET", "/admin/", headers=cookie)
        assert (status, response.getheader("Retry-After")) == (503, "5")
        assert "Database unavailable" in page

    handle = start(database)
    back = time.monotonic()
    while call(server.port, "GET", "/api/v1/notes", token)[0] != 200:
        assert time.monotonic() - back < 30, "the app never recovered"
        time.sleep(0.01)
    recovered_after = time.monotonic() - back
    try:
        for _ in range(12):
            status, _, page = call(server.port, "GET", "/api/v1/notes", token)
            assert status == 200 and [note["title"] for note in page["items"]] == ["kept"]
            assert call(server.port, "GET", "/readyz")[0] == 200
        assert call(server.port, "POST", "/api/v1/notes", token, {"title": "after"})[0] == 201
        print(f"\noutage: first 200 on the API {recovered_after * 1000:.0f} ms after PostgreSQL")
        assert recovered_after < 5

        # A restart between two requests: every thread's kept connection is dead, and each is
        # checked before reuse and replaced, so not one request fails.
        handle.leave()
        handle = start(database)
        statuses = [call(server.port, "GET", "/api/v1/notes", token)[0] for _ in range(16)]
        assert statuses == [200] * 16
        assert server.stop() == 0
    finally:
        handle.leave()
