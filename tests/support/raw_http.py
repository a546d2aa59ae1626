"""One HTTP/1.1 request by http.client, with the body chunked if asked: what urllib cannot send."""

import http.client
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of the header `name` (any case)."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


def send(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    chunked: bool = False,
) -> Reply:
    """`body` with a Content-Length, or as `Transfer-Encoding: chunked` and no length."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # A body of unknown length (an iterator) is what http.client sends chunked.
        payload = iter([body]) if chunked and body is not None else body
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()
