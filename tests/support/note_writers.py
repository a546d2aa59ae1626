"""Writers that POST notes with Idempotency-Keys over HTTP, and the checker of what was kept.

Every write records its answer, so a test can compare what the API acknowledged with what it
stores (the crash, supervision, point-in-time and import tests).
"""

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

REFUSED_PAUSE_SECONDS = 0.1


@dataclass
class Write:
    key: str
    title: str
    body: str | None = None  # None: a short one naming the key
    status: int | None = None  # None: no answer (the connection failed or was cut)
    note_id: int | None = None
    replayed: bool = False
    retry_after: str | None = None
    detail: str | None = None  # what a refusal said
    answered_at: float | None = None  # time.monotonic() when the answer (or the failure) came


def post_note(port: int, token: str, write: Write, timeout: float = 10) -> None:
    """POST the note with its key; records the answer on `write`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            "/api/v1/notes",
            body=json.dumps({"title": write.title, "body": write.body or f"key {write.key}"}),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": write.key,
            },
        )
        response = connection.getresponse()
        body = json.loads(response.read() or b"null")
    except (OSError, http.client.HTTPException, ValueError):
        write.status = None
        return
    finally:
        connection.close()
        write.answered_at = time.monotonic()
    write.status = response.status
    write.replayed = response.getheader("Idempotent-Replayed") == "true"
    write.retry_after = response.getheader("Retry-After")
    if response.status == 201:
        write.note_id = body["id"]
    elif isinstance(body, dict):
        write.detail = body.get("detail")


def write_until(stop: threading.Event, port: int, token: str, writer: int, log: list) -> None:
    for number in range(1_000_000):
        if stop.is_set():
            return
        write = Write(key=str(uuid.uuid4()), title=f"writer {writer} note {number}")
        log.append(write)
        post_note(port, token, write)
        if write.status != 201:
            time.sleep(REFUSED_PAUSE_SECONDS)  # as a client would, if sooner than Retry-After


class Writers:
    """`count` threads writing notes until stopped; every write is in `writes`."""

    def __init__(self, port: int, token: str, count: int = 4):
        self.writes: list[Write] = []
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(
                target=write_until,
                args=(self.stop_event, port, token, n, self.writes),
                daemon=True,  # a failed test must not wait for them
            )
            for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def stop(self) -> list[Write]:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self.writes


def all_notes(server, token: str) -> list[dict]:
    notes, cursor = [], ""
    while True:
        status, page = server.request("GET", f"/api/v1/notes?limit=100{cursor}", token=token)
        assert status == 200, page
        notes += page["items"]
        if not page["next"]:
            return notes
        cursor = f"&cursor={page['next']}"


def problems(acknowledged: dict[int, str], notes: list[dict]) -> list[str]:
    """What is wrong with the stored notes, given what the API acknowledged: the checker."""
    stored = {note["id"]: note["title"] for note in notes}
    found = [
        f"acknowledged note {note_id} ({title!r}) is missing"
        for note_id, title in acknowledged.items()
        if note_id not in stored
    ]
    found += [
        f"note {note_id} is {stored[note_id]!r}, acknowledged as {title!r}"
        for note_id, title in acknowledged.items()
        if note_id in stored and stored[note_id] != title
    ]
    found += [
        f"{title!r} is stored {count} times"
        for title, count in Counter(stored.values()).items()
        if count > 1
    ]
    return found
