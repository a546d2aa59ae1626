"""When the buffering worker counts a request as all there (server/buffering_worker.py).

Complete means: hand it to a thread now. Anything the framing check does not understand also
counts as complete, so that gunicorn refuses it at once instead of the loop waiting for more.
"""

import json

import pytest

from server.buffering_worker import PendingRequest, request_timeout_response
from server.wsgi_servers import worker_class

LIMITS = {"max_header_bytes": 1000, "max_body_bytes": 100}
HEAD = b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\n"


def arrived(*pieces: bytes) -> PendingRequest:
    request = PendingRequest(pieces[0], **LIMITS)
    for piece in pieces[1:]:
        request.add(piece)
    return request


@pytest.mark.parametrize(
    ("pieces", "complete"),
    [
        ((b"GET /healthz HTTP/1.1\r\nHost: x\r\n",), False),
        ((b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",), True),
        ((b"\r\nGET / HTTP/1.1\r\n", b"Host: x\r\n\r\n"), True),  # an empty line first
        ((HEAD + b"Content-Length: 5\r\n\r\nabc",), False),
        ((HEAD + b"Content-Length: 5\r\n\r\nabc", b"de"), True),
        ((HEAD + b"content-length:  5 \r\n\r\n", b"a", b"b", b"c", b"d", b"e"), True),
        # Refused by gunicorn or Django from what is there: no need to wait for the body.
        ((HEAD + b"Content-Length: 101\r\n\r\n",), True),  # over MAX_REQUEST_BYTES
        ((HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n",), True),
        ((HEAD + b"Content-Length: -5\r\n\r\n",), True),
        ((HEAD + b"Transfer-Encoding: gzip\r\n\r\n",), True),
        ((HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",), True),
        ((b"GET /" + b"a" * 1001,), True),  # headers over the limit
    ],
)
def test_content_length_framing(pieces, complete):
    assert arrived(*pieces).complete is complete


CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("pieces", "complete"),
    [
        ((CHUNKED,), False),
        ((CHUNKED + b"3\r\nabc\r\n",), False),
        ((CHUNKED + b"3\r\nabc\r\n0\r\n",), False),
        ((CHUNKED + b"3\r\nabc\r\n0\r\n\r\n",), True),
        ((CHUNKED, b"3;ext=1\r\na", b"bc\r\n", b"0\r\nTrailer: t\r\n", b"\r\n"), True),
        ((CHUNKED + b"3\r\nab", b"c\r\n1\r\n", b"d\r\n0\r\n\r\n"), True),
        ((CHUNKED + b"zz\r\n",), True),  # not a chunk size: gunicorn answers 400
        ((CHUNKED + b"3" * 5000,), True),  # a chunk-size line that never ends
        ((CHUNKED + b"fff\r\n" + b"a" * 1200,), True),  # past MAX_REQUEST_BYTES + headers
    ],
)
def test_chunked_framing(pieces, complete):
    assert arrived(*pieces).complete is complete


def test_whole_tells_a_request_all_here_from_one_refused_from_its_headers():
    assert arrived(HEAD + b"Content-Length: 2\r\n\r\nab").whole
    assert arrived(CHUNKED + b"2\r\nab\r\n0\r\n\r\n").whole
    assert arrived(b"GET / HTTP/1.1\r\n\r\n").whole
    for refused in (
        HEAD + b"Content-Length: 101\r\n\r\n",
        HEAD + b"Transfer-Encoding: gzip\r\n\r\n",
        CHUNKED + b"zz\r\n",
        b"GET /" + b"a" * 1001,
    ):
        request = arrived(refused)
        assert (request.complete, request.whole) == (True, False), refused


def test_a_client_waiting_for_100_continue_is_noticed():
    request = arrived(HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert (request.complete, request.expects_continue) == (False, True)
    assert not arrived(HEAD + b"Content-Length: 5\r\n\r\n").expects_continue


def test_the_408_is_the_projects_json_error_and_closes():
    head, _, body = request_timeout_response(30).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Content-Type: application/json" in head and b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"detail": "The request did not arrive in full within 30 seconds."}


def test_web_buffer_requests_picks_the_worker(monkeypatch):
    assert worker_class() == "server.buffering_worker.BufferingThreadWorker"
    monkeypatch.setenv("WEB_BUFFER_REQUESTS", "false")
    assert worker_class() == "gthread"
