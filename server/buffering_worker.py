"""gunicorn's gthread worker, with each request read in full before a thread serves it.

Plain gthread hands a connection to one of its WEB_THREADS threads as soon as bytes arrive; the
thread reads the headers, and Django reads the body from the socket, waiting for every byte. A
client sending one byte a second holds that thread for as long as it likes, and WEB_THREADS such
clients leave no thread for anyone else, health probes included. Here the worker's event loop
reads the requests of all its connections side by side, never waiting on one, and a thread gets
a request only once its headers and whole body are in memory: a slow client costs a socket and a
buffer of at most MAX_REQUEST_BYTES, not a thread. A request still incomplete
REQUEST_READ_TIMEOUT seconds after it was accepted (or after its first byte, on a kept-alive
connection) is answered 408 and its connection closed.

Two more waits on a client are kept from blocking anything: a request refused from its headers
alone (a body over MAX_REQUEST_BYTES) closes its connection, where gthread would have its thread
read the rest of the body away first; and a closing connection lingers (reads what the client
still sends, so that a reset does not cut the response short) in the loop, without blocking it.

TLS and HTTP/2 connections are left to gthread as it is: neither is configured here (TLS ends at
the proxy in front).
"""

import contextlib
import json
import selectors
import socket
import time
from functools import partial

from django.conf import settings
from gunicorn import http
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

# Where gunicorn's settings say 0 ("no limit"): its fast parser's bound for a request line, and
# its defaults for the header fields. Headers longer than this reach a thread unfinished.
UNLIMITED_REQUEST_LINE = 1024 * 1024
DEFAULT_HEADER_FIELDS = 100
DEFAULT_HEADER_FIELD_SIZE = 8190
# A chunk-size line is a few hex digits and maybe an extension; longer is not HTTP.
MAX_CHUNK_SIZE_LINE = 4096
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A closing connection's lingering read: as long and as much as gunicorn's util.close_graceful.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024


def request_timeout_response(seconds: int) -> bytes:
    """A 408 with the project's error body, for a request not all there in time."""
    body = json.dumps(
        {"detail": f"The request did not arrive in full within {seconds} seconds."}
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class PendingRequest:
    """The bytes of one HTTP/1.1 request read so far, and whether that is all of it.

    Only the framing is read here (where the headers end, Content-Length or chunked); gunicorn
    parses and checks the request as usual once a thread has it. Anything this does not
    understand (a malformed length, an unknown transfer coding, headers or a body over the
    limits) counts as complete: gunicorn or Django then refuses it at once, from the bytes at
    hand, without waiting for more.
    """

    def __init__(self, data: bytes, *, max_header_bytes: int, max_body_bytes: int):
        self.data = bytearray(data)
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.body_start: int | None = None
        self.content_length = 0
        self.chunked = False
        self.next_chunk = 0  # chunked: where the next chunk-size line starts
        self.expects_continue = False
        self.continue_sent = False
        self.complete = False  # a thread may have it now
        self.whole = False  # ... and all of it is here (not refused from its headers alone)
        self.deadline = 0.0
        self._update()

    def add(self, data: bytes) -> None:
        self.data += data
        self._update()

    def _update(self) -> None:
        if self.complete:
            return
        if self.body_start is None and not self._read_headers():
            return
        if self.complete:
            return
        if self.chunked:
            self.complete = self._chunks_complete()
        else:
            self.whole = self.complete = len(self.data) - self.body_start >= self.content_length

    def _read_headers(self) -> bool:
        # Empty lines before a request line are ignored (RFC 9112, section 2.2).
        start = len(self.data) - len(self.data.lstrip(b"\r\n"))
        end = self.data.find(b"\r\n\r\n", start)
        if end < 0:
            self.complete = len(self.data) > self.max_header_bytes
            return False
        self.body_start = end + 4
        fields: dict[bytes, list[bytes]] = {}
        for line in bytes(self.data[start:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields.setdefault(name.strip().lower(), []).append(value.strip().lower())
        lengths = fields.get(b"content-length", [])
        codings = b",".join(fields.get(b"transfer-encoding", [])).split(b",")
        self.expects_continue = b"100-continue" in fields.get(b"expect", [])
        if b"transfer-encoding" in fields:
            self.chunked = codings[-1].strip() == b"chunked" and not lengths
            self.next_chunk = self.body_start
            self.complete = not self.chunked
        elif len(lengths) == 1 and lengths[0].isdigit():
            self.content_length = int(lengths[0])
            self.complete = self.content_length > self.max_body_bytes
        else:
            self.complete = bool(lengths)  # several, or not a number: refused at once
        return True

    def _chunks_complete(self) -> bool:
        if len(self.data) - self.body_start > self.max_body_bytes + self.max_header_bytes:
            return True
        while True:
            line_end = self.data.find(b"\r\n", self.next_chunk)
            if line_end < 0:
                return len(self.data) - self.next_chunk > MAX_CHUNK_SIZE_LINE
            size = bytes(self.data[self.next_chunk : line_end]).split(b";", 1)[0].strip()
            if not size or not HEX_DIGITS.issuperset(size):
                return True
            if int(size, 16) == 0:
                # The last chunk, then trailer fields, if any, and an empty line.
                self.whole = self.data.find(b"\r\n\r\n", line_end) >= 0
                return self.whole
            chunk_end = line_end + 2 + int(size, 16) + 2
            if len(self.data) < chunk_end:
                return False
            self.next_chunk = chunk_end


class BufferingThreadWorker(ThreadWorker):
    """gthread, but a thread gets a request only once all of it has arrived."""

    def init_process(self):
        # Before super(): it ends by running the worker's loop.
        self.read_timeout = settings.REQUEST_READ_TIMEOUT
        self.timeout_response = request_timeout_response(self.read_timeout)
        # The largest any endpoint takes (the bulk import's); each view's own limit applies after.
        self.max_body_bytes = settings.LARGEST_REQUEST_BYTES
        line = self.cfg.limit_request_line or UNLIMITED_REQUEST_LINE
        fields = self.cfg.limit_request_fields or DEFAULT_HEADER_FIELDS
        size = self.cfg.limit_request_field_size or DEFAULT_HEADER_FIELD_SIZE
        self.max_header_bytes = line + fields * (size + 2) + 4
        self.reading: dict = {}  # connection -> PendingRequest
        self.lingering: dict = {}  # connection -> [deadline, bytes read]
        super().init_process()

    def enqueue_req(self, conn):
        """Read the request in the event loop first; a thread gets it when it is complete."""
        if (
            conn.is_http2
            or self.cfg.is_ssl
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        ):
            super().enqueue_req(conn)
            return
        # A kept-alive connection may hold the start of its next request already.
        held = conn.parser.unreader.take_buffered() if conn.parser else b""
        request = PendingRequest(
            held, max_header_bytes=self.max_header_bytes, max_body_bytes=self.max_body_bytes
        )
        request.deadline = time.monotonic() + self.read_timeout
        conn.sock.setblocking(False)
        # Most requests are all there already (the socket was readable): no trip to the poller.
        if not request.complete and not self._receive(conn, request):
            self._close(conn)
            return
        if request.complete:
            self._serve(conn, request)
            return
        self.reading[conn] = request
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn, _sock):
        request = self.reading[conn]
        if not self._receive(conn, request):
            self._stop_reading(conn)
            self._close(conn)
        elif request.complete:
            self._stop_reading(conn)
            self._serve(conn, request)

    def _receive(self, conn, request) -> bool:
        """Add what has arrived to `request`; False when the client has gone."""
        try:
            data = conn.sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        request.add(data)
        if request.expects_continue and not (request.complete or request.continue_sent):
            # The client waits for this before sending its body. gunicorn sends its own later,
            # once the body is in: a second 100 is allowed (RFC 9110, section 15.2).
            request.continue_sent = True
            self._send(conn, CONTINUE)
        return True

    def _serve(self, conn, request):
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(request.data))
        # The request waits in the parser's buffer, not on the socket: no waiting for data.
        conn.data_ready = True
        conn.whole_request = request.whole
        super().enqueue_req(conn)

    def _keepalive_after(self, conn, keepalive):
        """Close, rather than keep alive, a connection whose request was not all there.

        That request was refused from its headers (a body over MAX_REQUEST_BYTES, say), and the
        rest of its body is still on its way: gthread would read it away in the thread, waiting
        on the client for up to 5 s, before the next request. Closing lingers in the loop.
        """
        if not getattr(conn, "whole_request", True):
            return False
        return super()._keepalive_after(conn, keepalive)

    def finish_request(self, conn, fs):
        """As gthread, except that a connection to close lingers without blocking the loop.

        gthread closes "gracefully" here: it shuts its side, then reads what the client still
        sends, for up to 2 s, so that the kernel does not reset the connection and lose the end
        of the response (RFC 9112, section 9.6). It reads in this loop, blocking it: a client
        that trickles bytes after its request would stall every other connection.
        """
        if fs.cancelled() or fs.exception() is not None or fs.result():
            super().finish_request(conn, fs)  # kept alive, deferred, or failed: as gthread
            return
        self._linger(conn)

    def murder_pending(self):
        """Also answer 408 to requests not complete in time (this runs about once a second)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, request in list(self.reading.items()):
            # A stopping worker also closes connections that have sent nothing yet.
            if now < request.deadline and (self.alive or request.data):
                continue
            self._stop_reading(conn)
            if request.data:
                self.log.info("408: request from %s not complete in time", conn.client)
                self._send(conn, self.timeout_response)
                self._linger(conn)
            else:
                self._close(conn)
        for conn, (deadline, _) in list(self.lingering.items()):
            if now >= deadline:
                self._stop_lingering(conn)

    def _stop_reading(self, conn):
        del self.reading[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _send(self, conn, data: bytes):
        with contextlib.suppress(OSError):  # the client has gone: nothing to tell it
            conn.sock.send(data)  # a few bytes into an empty socket buffer: does not block

    def _close(self, conn):
        self.nr_conns -= 1
        conn.close()

    def _linger(self, conn):
        """Close after the client has seen the response: shut our side, read until it closes."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_lingering, conn))
        except (OSError, ValueError, KeyError):
            self._close(conn)
            return
        self.lingering[conn] = [time.monotonic() + LINGER_SECONDS, 0]

    def _on_lingering(self, conn, _sock):
        try:
            data = conn.sock.recv(LINGER_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.lingering[conn][1] += len(data)
        if not data or self.lingering[conn][1] >= LINGER_BYTES:
            self._stop_lingering(conn)

    def _stop_lingering(self, conn):
        del self.lingering[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self._close(conn)
