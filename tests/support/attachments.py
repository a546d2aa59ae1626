"""Attachments over a real socket: uploads from a stream (never whole in memory), downloads read
in chunks, and the files a store holds."""

import contextlib
import hashlib
import http.client
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

CHUNK = 1 << 20


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes = b""
    size: int = 0  # bytes read, when the body was only counted
    sha256: str = ""
    extra: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body)


def zeros(size: int) -> Iterator[bytes]:
    """`size` bytes, generated a chunk at a time."""
    block = bytes(CHUNK)
    for start in range(0, size, CHUNK):
        yield block[: min(CHUNK, size - start)]


def upload(
    port: int,
    token: str,
    note_id: int,
    body: bytes | Iterable[bytes],
    *,
    name: str = "file.bin",
    size: int | None = None,
    content_type: str = "application/octet-stream",
    headers: dict | None = None,
    timeout: float = 30,
) -> Answer:
    length = len(body) if isinstance(body, bytes) else size
    sent = {
        "Authorization": f"Bearer {token}",
        "Content-Type": content_type,
        "Content-Length": str(length),
        **(headers or {}),
    }
    path = f"/api/v1/notes/{note_id}/attachments?name={quote(name, safe='')}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(
                "POST", path, body=body, headers=sent
            )  # refused: the answer says why
        answer = connection.getresponse()
        return Answer(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


def get(
    port: int, path: str, token: str | None = None, *, headers: dict | None = None,
    count_only: bool = False, timeout: float = 30,
) -> Answer:  # fmt: skip
    """GET `path`; with `count_only`, the body is hashed and counted as it comes, not kept."""
    sent = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=sent)
        answer = connection.getresponse()
        if not count_only:
            return Answer(answer.status, answer.headers, answer.read())
        digest, size = hashlib.sha256(), 0
        while chunk := answer.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return Answer(answer.status, answer.headers, size=size, sha256=digest.hexdigest())
    finally:
        connection.close()


def stored_files(folder: Path) -> list[str]:
    """What a store holds, partial uploads included (its lock file aside)."""
    if not folder.is_dir():
        return []
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and path.name != ".lock"
    )
