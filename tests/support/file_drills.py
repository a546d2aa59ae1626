"""The drills with files (restore, off-site, crash, compose): a note, an upload that must be
acknowledged, a delete and a download over real HTTP, and what a (stopped) data folder and a
store hold."""

import hashlib
import http.client
import json
from pathlib import Path

from pgembedded.postgres import EmbeddedPostgres


def call(port: int, method: str, path: str, token: str, body: bytes = b"", **headers: str):
    """(status, body bytes); raises OSError when the server is not there."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            method, path, body=body, headers={"Authorization": f"Bearer {token}", **headers}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def make_note(port: int, token: str, title: str = "with files") -> int:
    status, body = call(
        port,
        "POST",
        "/api/v1/notes",
        token,
        json.dumps({"title": title}).encode(),
        **{"Content-Type": "application/json"},
    )
    assert status == 201, body
    return json.loads(body)["id"]


def upload_acked(port: int, token: str, note_id: int, content: bytes, name: str) -> dict:
    """The 201's body; AssertionError on any other answer."""
    status, body = call(
        port,
        "POST",
        f"/api/v1/notes/{note_id}/attachments?name={name}",
        token,
        content,
        **{"Content-Type": "application/octet-stream"},
    )
    assert status == 201, (status, body[:300])
    return json.loads(body)


def delete(port: int, token: str, note_id: int, attachment_id: int) -> None:
    status, body = call(
        port, "DELETE", f"/api/v1/notes/{note_id}/attachments/{attachment_id}", token
    )
    assert status == 204, (status, body[:300])


def download(port: int, token: str, note_id: int, attachment_id: int) -> bytes:
    path = f"/api/v1/notes/{note_id}/attachments/{attachment_id}/content"
    status, body = call(port, "GET", path, token)
    assert status == 200, (status, body[:300])
    return body


def stored_name(content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    return f"{digest[:2]}/{digest}"


def store_files(store: Path) -> set[str]:
    """The names of the files in a local store (upload leftovers aside)."""
    if not store.is_dir():
        return set()
    return {
        f"{path.parent.name}/{path.name}"
        for path in store.glob("??/*")
        if path.is_file() and len(path.name) == 64
    }


def attachment_rows(data_dir: Path) -> set[str]:
    """The stored names the attachment rows of the (stopped) data folder name."""
    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    try:
        with server.connect() as connection:
            rows = connection.execute("SELECT file FROM notes_attachment").fetchall()
    finally:
        server.leave()
    return {name for (name,) in rows}
