"""Raw HTTP for the front door's tests: framing cases, slow readers, and memory by process."""

# ruff: noqa: E501  (the framing cases read best as a table, one request to a line)

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass

from bench.processes import process_tree
from bench.soak_memory import memory_of_processes

CANARY_TITLE = "canary: a request inside a body ran"
HOST = b"Host: 127.0.0.1\r\n"


@dataclass(frozen=True)
class Answer:
    statuses: list[int]  # every status line, 1xx included
    closed: bool  # the server closed the connection after answering
    seconds: float
    raw: bytes

    @property
    def body(self) -> bytes:
        """The last answer's body, de-chunked."""
        head, _, body = self.raw[self.raw.rindex(b"HTTP/1.") :].partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" not in head.lower():
            return body
        whole = b""
        while body:
            size, _, body = body.partition(b"\r\n")
            length = int(size.split(b";")[0], 16)
            whole, body = whole + body[:length], body[length + 2 :]
            if length == 0:
                break
        return whole


def exchange(port: int, raw: bytes, *, wait: float = 3.0, then: bytes = b"") -> Answer:
    """Send `raw`, read until the server closes or `wait` passes; `then` is sent after a 1xx."""
    started = time.monotonic()
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as client:
        with contextlib.suppress(OSError):  # refused while sending: the answer says why
            client.sendall(raw)
        try:
            while chunk := client.recv(65536):
                received += chunk
                if then and b" 100 " in received:
                    client.sendall(then)
                    then = b""
            closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    statuses = [
        int(line.split()[1])
        for line in received.split(b"\r\n")
        if line.startswith(b"HTTP/1.") and len(line.split()) > 1
    ]
    return Answer(statuses, closed, time.monotonic() - started, received)


def smuggled_note(token: str) -> bytes:
    """A whole request that would create the canary note, to hide inside another's body."""
    body = json.dumps({"title": CANARY_TITLE}).encode()
    return (
        b"POST /api/v1/notes HTTP/1.1\r\n" + HOST + b"Authorization: Bearer " + token.encode()
        + b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def framing_cases(token: str) -> list[tuple[str, bytes, int]]:
    """(name, bytes, the status nginx answers at once before closing) for invalid framings."""
    inner = smuggled_note(token)
    length = str(len(inner)).encode()
    post = b"POST /api/v1/auth/token HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
    chunked = hex(len(inner))[2:].encode() + b"\r\n" + inner + b"\r\n0\r\n\r\n"
    te = b"Transfer-Encoding: "
    return [
        ("CL and TE", post + b"Content-Length: 4\r\n" + te + b"chunked\r\n\r\n" + chunked, 400),
        ("TE and CL", post + te + b"chunked\r\nContent-Length: " + length + b"\r\n\r\n" + chunked, 400),
        ("two lengths", post + b"Content-Length: 0\r\nContent-Length: " + length + b"\r\n\r\n" + inner, 400),
        ("a length twice", post + (b"Content-Length: " + length + b"\r\n") * 2 + b"\r\n" + inner, 400),
        ("signed length", post + b"Content-Length: +" + length + b"\r\n\r\n" + inner, 400),
        ("negative length", post + b"Content-Length: -1\r\n\r\n" + inner, 400),
        ("hex length", post + b"Content-Length: 0x10\r\n\r\n" + inner, 400),
        ("length list", post + b"Content-Length: 1, 1\r\n\r\nx" + inner, 400),
        ("length with a space", post + b"Content-Length: 1 0\r\n\r\n" + inner, 400),
        ("huge length", post + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
        ("form feed after length", post + b"Content-Length: " + length + b"\x0c\r\n\r\n" + inner, 400),
        ("chunked, identity", post + te + b"chunked, identity\r\n\r\n" + chunked, 501),
        ("identity", post + te + b"identity\r\n\r\n" + inner, 501),
        ("unknown coding", post + te + b"gzip\r\n\r\n" + inner, 501),
        ("xchunked", post + te + b"xchunked\r\n\r\n" + chunked, 501),
        ("space before colon in TE", post + b"Transfer-Encoding : chunked\r\n\r\n" + chunked, 400),
        ("TE twice", post + (te + b"chunked\r\n") * 2 + b"\r\n" + chunked, 400),
        ("TE in HTTP/1.0", post.replace(b"HTTP/1.1", b"HTTP/1.0") + te + b"chunked\r\n\r\n" + chunked, 400),
        ("bad chunk size", post + te + b"chunked\r\n\r\nzz\r\n" + inner + b"\r\n0\r\n\r\n", 400),
        ("chunk size overflow", post + te + b"chunked\r\n\r\nffffffffffffffffff\r\n" + inner, 400),
        ("space before colon", post + b"Content-Length : " + length + b"\r\n\r\n" + inner, 400),
        ("obs-fold", post + b"X-Fold: a\r\n b\r\nContent-Length: " + length + b"\r\n\r\n" + inner, 400),
        ("bare CR", b"GET /healthz HTTP/1.1\r" + HOST + b"\r\n", 400),
        ("NUL in a value", b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n", 400),
        ("space in a name", b"GET /healthz HTTP/1.1\r\n" + HOST + b"X A: b\r\n\r\n", 400),
        ("no Host in HTTP/1.1", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", b"GET /healthz HTTP/1.1\r\n" + HOST * 2 + b"\r\n", 400),
        ("absolute form for another host", b"GET http://evil.example/api/v1/notes HTTP/1.1\r\n" + HOST + b"\r\n", 400),
        ("bad version", b"GET /healthz HTTP/1.x\r\n" + HOST + b"\r\n", 400),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        ("lowercase method", b"get /healthz HTTP/1.1\r\n" + HOST + b"\r\n", 400),
        ("space in the target", b"GET /health z HTTP/1.1\r\n" + HOST + b"\r\n", 400),
        ("a 2 MB request line", b"GET /" + b"a" * 2_000_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
        ("a 300 kB header", b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431),
        ("80,000 headers", b"GET /healthz HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: a\r\n" % i for i in range(80_000)) + b"\r\n", 431),
    ]  # fmt: skip


class SlowReaders:
    """`count` connections with a small receive buffer, each pipelining `requests` GETs of
    `path` and reading nothing: the server's writes to them stall at once."""

    def __init__(self, port: int, count: int, path: str, requests: int = 10):
        self.port, self.count, self.path, self.requests = port, count, path, requests
        self.sockets: list[socket.socket] = []

    def __enter__(self):
        request = f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        for _ in range(self.count):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
            client.settimeout(5)
            client.connect(("127.0.0.1", self.port))
            client.sendall(request * self.requests)
            self.sockets.append(client)
        return self

    def __exit__(self, *exc):
        for client in self.sockets:
            client.close()


def timed_get(port: int, path: str, token: str | None = None, timeout: float = 2.0) -> float | None:
    """Seconds for a whole answer of 200 to GET `path` on a new connection, or None."""
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    request = f"GET {path} HTTP/1.1\r\n".encode() + HOST + auth + b"Connection: close\r\n\r\n"
    answer = exchange(port, request, wait=timeout)
    return answer.seconds if answer.closed and answer.statuses == [200] else None


def rss_of_tree(pid: int) -> float:
    """RSS in MiB of `pid` and every process under it (serve: granian's workers, nginx, ...)."""
    return memory_of_processes(process_tree(pid))["rss_mib"]


class BodySenders:
    """Connections that each declare `length` bytes of body to a path and send it as fast as
    the server takes it, until the server answers or closes, or the block ends."""

    def __init__(self, port: int, targets: list[tuple[str, dict]], length: int):
        self.port, self.targets, self.length = port, targets, length
        self.answers: list[bytes] = []
        self.threads = [
            threading.Thread(target=self._send, args=target, daemon=True) for target in targets
        ]

    def _send(self, path: str, headers: dict) -> None:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {self.length}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        piece = b"[" + b" " * (1024 * 1024 - 1)
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as client:
            try:
                client.sendall(head.encode())
                sent = 0
                while sent < self.length - 1:  # all but the last byte
                    part = piece[: self.length - 1 - sent]
                    client.sendall(part)
                    sent += len(part)
                    piece = b" " * len(piece)
                time.sleep(1)  # the body all but complete, held open
                self.answers.append(client.recv(65536))
            except OSError as error:
                self.answers.append(repr(error).encode())

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        for thread in self.threads:
            thread.join(timeout=120)
