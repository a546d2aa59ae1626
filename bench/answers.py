"""Before the load: each configuration answers read-one as the app does, or the run stops.

A configuration that answered every request with a 401, or with any note at all, would still be
measured by wrk (as errors, or not at all): its numbers would compare nothing. Three requests
tell: the caller's note, the same request without a token, and another user's note.
"""

import json
import urllib.error
import urllib.request

from bench.errors import BenchError


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback http)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_read_one(
    name: str, base_url: str, *, token: str, note_id: int, title: str, foreign_id: int | None
) -> dict:
    """The statuses `name` answered with; BenchError unless they are 200 with the caller's note
    `note_id` (titled `title`), 401 without a token, and 404 for `foreign_id`, a note of
    another user (None: there is no other user)."""
    url = f"{base_url}/api/v1/notes/{{}}"
    status, body = _get(url.format(note_id), token)
    try:
        note = json.loads(body) if status == 200 else None
    except ValueError:
        note = None
    if not isinstance(note, dict) or (note.get("id"), note.get("title")) != (note_id, title):
        raise BenchError(
            f"{name} answered GET /api/v1/notes/{note_id} with {status} {body[:300]!r}, "
            f"not 200 and that note ({title!r})"
        )
    without_token, _ = _get(url.format(note_id), None)
    foreign = expected = None
    if foreign_id is not None:
        foreign, expected = _get(url.format(foreign_id), token)[0], 404
    if (without_token, foreign) != (401, expected):
        raise BenchError(
            f"{name} answered {without_token} without a token (not 401) and {foreign} for "
            f"another user's note (not 404)"
        )
    return {"read_one": status, "without_token": without_token, "another_users_note": foreign}
