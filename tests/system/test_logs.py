"""JSON logs with a request id, followed through a real `serve`: the access line and the error.

The app's database is one the test stops, so that a request fails with a real database error.
"""

import http.client
import json

import pytest

from pgembedded.postgres import EmbeddedPostgres
from tests.support.databases import SECRET_KEY, database_url
from tests.support.processes import Server, free_port


@pytest.fixture
def database(tmp_path):
    server = EmbeddedPostgres(tmp_path / "db")
    server.ensure_running()
    yield server
    if server.running_pid() is not None:
        EmbeddedPostgres(server.data_dir).stop()


def call(port: int, path: str, headers: dict, source: str = "127.0.0.1"):
    """GET `path` from the local address `source` (127.0.0.2 is not a trusted proxy here)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Request-ID")
    finally:
        connection.close()


def log_lines(server: Server) -> list[dict]:
    """The JSON objects in the serve log (its own start-up messages are plain text on stdout)."""
    lines = server.log.read_text().splitlines()
    assert not any(line.startswith("Traceback") for line in lines), "a traceback outside JSON"
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_request_id_from_a_trusted_proxy_is_on_the_access_line_and_the_error_line(
    tmp_path, database
):
    server = Server(
        tmp_path / "app",
        DATABASE_URL=database_url(database),
        DJANGO_SECRET_KEY=SECRET_KEY,
        ACCESS_LOG="true",
        DJANGO_TRUSTED_PROXIES="127.0.0.1/32",
        METRICS_PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        TASK_WORKERS="0",  # its worker process is not what this test follows
    )
    try:
        token = server.token()
        auth = {"Authorization": f"Bearer {token}"}
        # A client error: logged as a warning by Django, with the proxy's id.
        status, echoed = call(
            server.port, "/api/v1/notes/424242", {**auth, "X-Request-ID": "edge-404"}
        )
        assert (status, echoed) == (404, "edge-404")

        # An untrusted hop's id is replaced by a fresh one.
        status, replaced = call(
            server.port, "/api/v1/notes/424242", {**auth, "X-Request-ID": "forged"}, "127.0.0.2"
        )
        assert status == 404 and replaced not in (None, "forged") and len(replaced) == 32

        # A database error: PostgreSQL goes away under the app.
        database.stop()
        status, echoed = call(server.port, "/api/v1/notes/1", {**auth, "X-Request-ID": "edge-db"})
        assert (status, echoed) == (503, "edge-db")
    finally:
        server.stop()

    lines = log_lines(server)
    by_id = {}
    for line in lines:
        by_id.setdefault(line.get("request_id"), []).append(line)

    access, warning = sorted(by_id["edge-404"], key=lambda line: line["logger"])
    assert access["logger"] == "access" and access["status"] == 404
    assert access["path"] == "/api/v1/notes/424242"
    assert (warning["logger"], warning["level"]) == ("django.request", "WARNING")

    loggers = {line["logger"]: line for line in by_id["edge-db"]}
    assert loggers["access"]["status"] == 503
    assert loggers["django.request"]["level"] == "ERROR"
    assert "/api/v1/notes/1" in loggers["django.request"]["message"]

    # Negative control: the forged id is on no line; the replacement is on the access line.
    assert "forged" not in by_id
    assert [line["logger"] for line in by_id[replaced]].count("access") == 1
