"""What the front door and granian do at the edges of HTTP, over a real connection.

`manage.py serve` as shipped (nginx in front of granian), and granian alone (WEB_FRONT=none):
a chunked body (no Content-Length), and the `Server` header each writes on its own.
"""

import json

import pytest

from tests.support.processes import SUPERUSER, Server
from tests.support.raw_http import send

GRANIAN_NAMES_ITSELF = pytest.mark.xfail(
    strict=True,
    reason="granian 2.8 writes `server: granian` itself (a Rust constant, no option to drop it); "
    "an application's Server header only replaces the value",
)
FRONTS = [pytest.param("nginx", id="front"), pytest.param("none", id="granian-alone")]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", params=FRONTS)
def served(request, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp(request.param) / "data", WEB_FRONT=request.param)
    yield request.param, server
    server.stop()


def test_a_chunked_body_is_read_by_the_front_and_refused_by_the_app_alone(served):
    front, server = served
    credentials = json.dumps(SUPERUSER).encode()
    token = send(server.port, "POST", "/api/v1/auth/token", credentials, JSON).json()["token"]
    headers = {**JSON, "Authorization": f"Bearer {token}"}

    chunked = send(
        server.port, "POST", "/api/v1/notes", b'{"title": "chunked"}', headers, chunked=True
    )

    if front == "nginx":
        # nginx reads the whole body, then hands it on with its length.
        assert chunked.status == 201, chunked.body
        assert chunked.json()["title"] == "chunked"
    else:
        # Without a length Django would see an empty body: the app refuses it (411).
        assert chunked.status == 411, chunked.body
        assert chunked.header("Content-Type") == ["application/json"]
        assert "Content-Length" in chunked.json()["detail"]
    # The same body with its length is read either way.
    created = send(server.port, "POST", "/api/v1/notes", b'{"title": "sized"}', headers)
    assert created.status == 201, created.body


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/readyz"), ("GET", "/api/v1/notes"), ("GET", "/nowhere"), ("POST", "/api/v1/me")],
)
def test_no_response_names_the_server_software(request, served, method, path):
    front, server = served
    if front == "none":
        request.applymarker(GRANIAN_NAMES_ITSELF)

    reply = send(server.port, method, path, b"{}" if method == "POST" else None, JSON)

    assert reply.status < 500, reply.body
    assert reply.header("Server") == [], reply.headers
