"""Clients that send their requests slowly, and a probe that times an answer."""

import http.client
import select
import socket
import threading
import time

__all__ = ["CLOSED", "SlowClients", "probe", "slow_body"]

CLOSED = b"(closed without an answer)"


def slow_body(*, content_length: int = 100_000, at_once: int = 0) -> bytes:
    """A POST's headers and the first `at_once` bytes of a body that never completes.

    Sent to the token endpoint, which anyone may call and which reads its body before answering
    (an endpoint that refuses first, as /api/v1/notes does without a token, frees its thread).
    `at_once`: a proxy that streams bodies may hold back a smaller trickle in its write buffer
    (Caddy holds 4 kB), so that the app would not see the request at all.
    """
    head = (
        "POST /api/v1/auth/token HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    )
    return head.encode() + b" " * at_once


class SlowClients:
    """`count` connections to `port` that each send `head`, then one byte a second.

    `slow_body()` makes them slow senders of whole bodies: 100 kB at a byte a second. A client
    stops sending once the server has answered (a 408 closes the connection), unless
    `keep_sending`: then it trickles on after its answer too. Use as a context manager: the
    clients start on entry and are closed on exit.
    """

    def __init__(
        self, port: int, count: int, head: bytes, *, keep_sending: bool = False, stall=False
    ):
        self.port = port
        self.count = count
        self.head = head
        self.keep_sending = keep_sending
        self.stall = stall  # send nothing after the head: a client gone quiet
        self.sockets: list[socket.socket] = []
        self.received: dict[socket.socket, bytes] = {}  # what the server answered, when it did
        self.stopped = threading.Event()
        self.sender = threading.Thread(target=self._send_a_byte_a_second, daemon=True)

    def __enter__(self):
        for _ in range(self.count):
            client = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            client.sendall(self.head)
            self.sockets.append(client)
        self.sender.start()
        return self

    def _send_a_byte_a_second(self):
        while not self.stopped.wait(1):
            for client in self.sockets:
                if client in self.received:
                    continue
                # Once the server has answered (a 408), stop sending: it has closed its end.
                if not self.keep_sending and select.select([client], [], [], 0)[0]:
                    try:
                        self.received[client] = client.recv(65536) or CLOSED
                    except OSError as error:
                        self.received[client] = repr(error).encode()
                    continue
                if self.stall:
                    continue
                try:
                    client.send(b" ")
                except OSError as error:
                    self.received[client] = repr(error).encode()

    def answers(self) -> list[bytes]:
        """What the server sent back on each connection so far (b"" when nothing yet)."""
        return [self.received.get(client, b"") for client in self.sockets]

    def __exit__(self, *exc):
        self.stopped.set()
        self.sender.join(timeout=5)
        for client in self.sockets:
            client.close()


def probe(port: int, path: str = "/healthz", timeout: float = 3) -> float | None:
    """Seconds until GET `path` on `port` answered 200, or None when it did not in `timeout`."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()
    return time.monotonic() - started if status == 200 else None
