"""What the production servers themselves do at the edges of HTTP, over a real connection.

`manage.py serve` on gunicorn, and on granian when it is installed: a chunked body (no
Content-Length), and the `Server` header each server writes on its own.
"""

import importlib.util
import json

import pytest

from tests.support.processes import SUPERUSER, Server
from tests.support.raw_http import send

GRANIAN_NAMES_ITSELF = pytest.mark.xfail(
    strict=True,
    reason="granian 2.8 writes `server: granian` itself (a Rust constant, no option to drop it); "
    "an application's Server header only replaces the value",
)
SERVERS = [
    pytest.param("gunicorn", id="gunicorn"),
    pytest.param(
        "granian",
        id="granian",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("granian") is None, reason="granian is not installed"
        ),
    ),
]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", params=SERVERS)
def served(request, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp(request.param) / "data", WEB_SERVER=request.param)
    yield request.param, server
    server.stop()


def test_a_chunked_body_is_refused_with_411_and_stores_nothing(served):
    _, server = served
    credentials = json.dumps(SUPERUSER).encode()
    token = send(server.port, "POST", "/api/v1/auth/token", credentials, JSON).json()["token"]
    headers = {**JSON, "Authorization": f"Bearer {token}"}

    refused = send(
        server.port, "POST", "/api/v1/notes", b'{"title": "chunked"}', headers, chunked=True
    )
    chunked_login = send(server.port, "POST", "/api/v1/auth/token", credentials, JSON, True)

    assert refused.status == 411, refused.body
    assert refused.header("Content-Type") == ["application/json"]
    assert "Content-Length" in refused.json()["detail"]
    assert chunked_login.status == 411, chunked_login.body
    # Negative control: the same body with its length is read.
    listed = send(server.port, "GET", "/api/v1/notes", headers=headers).json()
    assert listed["items"] == []
    created = send(server.port, "POST", "/api/v1/notes", b'{"title": "sized"}', headers)
    assert created.status == 201, created.body


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/readyz"), ("GET", "/api/v1/notes"), ("GET", "/nowhere"), ("POST", "/api/v1/me")],
)
def test_no_response_names_the_server_software(request, served, method, path):
    name, server = served
    if name == "granian":
        request.applymarker(GRANIAN_NAMES_ITSELF)

    reply = send(server.port, method, path, b"{}" if method == "POST" else None, JSON)

    assert reply.status < 500, reply.body
    assert reply.header("Server") == [], reply.headers
