"""Attachments through a real `serve` (nginx in front of granian) over real sockets.

The app authorises each download and nginx sends the bytes from its internal location: Range,
If-Range and the ETag (the sha256) work, every answer is an attachment a browser will not run,
and others get the same 404 as for nothing. The limits are JSON errors with no row and no file
left: the size (from the front door itself), the quota, and a store whose disk fills for real.
"""

import hashlib
import os
import subprocess

import pytest

from tests.support.attachments import get, stored_files, upload
from tests.support.processes import Server, manage

MAX_BYTES = 4 * 2**20
QUOTA_BYTES = 6 * 2**20
CONTENT = os.urandom(300_000)
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("attachments") / "data"
    served = Server(
        data_dir,
        ATTACHMENT_MAX_BYTES=str(MAX_BYTES),
        ATTACHMENT_QUOTA_BYTES=str(QUOTA_BYTES),
        WEB_CONCURRENCY="1",
    )
    served.store = data_dir / "files"
    served.data_dir = data_dir
    yield served
    served.stop()


@pytest.fixture(scope="module")
def token(server):
    return server.token()


@pytest.fixture(scope="module")
def note_id(server, token):
    status, note = server.request("POST", "/api/v1/notes", {"title": "files"}, token=token)
    assert status == 201
    return note["id"]


@pytest.fixture(scope="module")
def made(server, token, note_id):
    answer = upload(
        server.port, token, note_id, CONTENT, name="page.html", content_type="text/html"
    )
    assert answer.status == 201, answer.body
    return answer.json()


def content_path(note_id: int, attachment_id: int) -> str:
    return f"/api/v1/notes/{note_id}/attachments/{attachment_id}/content"


def test_nginx_sends_the_file_with_its_etag_and_safe_headers(server, token, note_id, made):
    assert made["sha256"] == DIGEST
    whole = get(server.port, content_path(note_id, made["id"]), token)

    assert whole.status == 200
    assert whole.body == CONTENT
    assert whole.headers["ETag"] == f'"{DIGEST}"'
    assert whole.headers["Content-Type"] == "text/html"
    assert whole.headers["Content-Disposition"] == 'attachment; filename="page.html"'
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert whole.headers["Cache-Control"] == "private, no-cache"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert "X-Accel-Redirect" not in whole.headers
    assert len(whole.headers.get_all("ETag")) == 1
    # Sent by nginx, not the app: the Server header nginx clears, granian would set.
    assert "Server" not in whole.headers


def test_range_if_range_and_if_none_match(server, token, note_id, made):
    path = content_path(note_id, made["id"])

    part = get(server.port, path, token, headers={"Range": "bytes=1000-1999"})
    tail = get(server.port, path, token, headers={"Range": "bytes=-10"})
    same = get(server.port, path, token, headers={"Range": "bytes=0-9", "If-Range": f'"{DIGEST}"'})
    changed = get(server.port, path, token, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    cached = get(server.port, path, token, headers={"If-None-Match": f'"{DIGEST}"'})
    beyond = get(server.port, path, token, headers={"Range": f"bytes={len(CONTENT)}-"})

    assert (part.status, part.body) == (206, CONTENT[1000:2000])
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(CONTENT)}"
    assert part.headers["Content-Disposition"] and part.headers["ETag"] == f'"{DIGEST}"'
    assert (tail.status, tail.body) == (206, CONTENT[-10:])
    assert (same.status, same.body) == (206, CONTENT[:10])
    assert (changed.status, changed.body) == (200, CONTENT), "another version: the whole file"
    assert cached.status == 304 and cached.headers["ETag"] == f'"{DIGEST}"'
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
    assert beyond.json()["detail"]


def test_others_and_clients_outside_get_nothing(server, token, note_id, made):
    other = {"username": "mallory", "password": "another-long-passphrase"}
    created = manage(
        server.data_dir, "createsuperuser", "--noinput", "--email", "m@example.org",
        DJANGO_SUPERUSER_USERNAME=other["username"], DJANGO_SUPERUSER_PASSWORD=other["password"],
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    _, body = server.request("POST", "/api/v1/auth/token", other)
    path = content_path(note_id, made["id"])

    theirs = get(server.port, path, body["token"])
    listed = get(server.port, f"/api/v1/notes/{note_id}/attachments", body["token"])
    anonymous = get(server.port, path)
    internal = get(server.port, f"/_front/files/{DIGEST[:2]}/{DIGEST}", token)
    # A client naming the front's header itself: nginx sets its own value over it.
    forged = get(server.port, path, token, headers={"X-Protected-Files-Location": "/etc/"})

    assert theirs.status == 404 and theirs.json() == {"detail": "Not found."}
    assert listed.status == 404
    assert anonymous.status == 401
    assert internal.status == 404 and CONTENT not in internal.body
    assert forged.status == 200 and forged.body == CONTENT


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("../../etc/passwd", 'attachment; filename="_.._etc_passwd"'),
        ("nul\x00byte.svg", 'attachment; filename="nul_byte.svg"'),
        ("é" * 996 + ".pdf", "attachment; filename*=utf-8''" + "%C3%A9" * 125 + ".pdf"),
        ("x" * 1000, 'attachment; filename="' + "x" * 255 + '"'),
    ],
)
def test_bad_names_are_stored_and_served_safely(server, token, note_id, name, served):
    made = upload(server.port, token, note_id, b"<svg/>", name=name, content_type="image/svg+xml")
    assert made.status == 201, made.body
    assert made.json()["name"] == name.replace("\x00", "_")

    answer = get(server.port, content_path(note_id, made.json()["id"]), token)

    assert answer.status == 200, "a long name still fits the front's buffer for the app's head"
    assert answer.headers["Content-Disposition"] == served
    assert answer.body == b"<svg/>"


def test_idempotency_key_replays_through_the_front(server, token, note_id):
    key = {"Idempotency-Key": "front-upload-1"}
    first = upload(server.port, token, note_id, b"once", name="once.txt", headers=key)
    again = upload(server.port, token, note_id, b"once", name="once.txt", headers=key)
    assert first.status == again.status == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


def test_over_the_size_limit_the_front_door_answers_413_before_the_app(server, token, note_id):
    before = stored_files(server.store)
    too_big = upload(server.port, token, note_id, bytes(MAX_BYTES + 1), name="big")

    assert too_big.status == 413
    assert "ATTACHMENT_MAX_BYTES" in too_big.json()["detail"]
    assert stored_files(server.store) == before


def test_over_the_quota_is_a_413_with_nothing_stored(server, token, note_id):
    # The module's other uploads add up to well under 3 MiB.
    sizes, statuses = [3 * 2**20, 3 * 2**20], []
    for number, size in enumerate(sizes):
        body = bytes([number + 1]) * size
        statuses.append(upload(server.port, token, note_id, body, name=f"{number}").status)
    before = stored_files(server.store)
    status, page = server.request(
        "GET", f"/api/v1/notes/{note_id}/attachments?limit=100", token=token
    )

    assert statuses[0] == 201 and statuses[1] == 413, statuses
    assert stored_files(server.store) == before
    assert status == 200 and len(page["items"]) == len({item["id"] for item in page["items"]})


@pytest.fixture
def small_store(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = tmp_path / "store"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={2 * 2**20},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=False)


def test_a_store_that_fills_is_a_507_with_nothing_left_and_recovers(tmp_path, small_store):
    served = Server(tmp_path / "data", PROTECTED_FILES_DIR=str(small_store), WEB_CONCURRENCY="1")
    try:
        token = served.token()
        _, note = served.request("POST", "/api/v1/notes", {"title": "full"}, token=token)

        full = upload(served.port, token, note["id"], os.urandom(3 * 2**20), name="3 MiB")
        status, page = served.request("GET", f"/api/v1/notes/{note['id']}/attachments", token=token)
        fits = upload(served.port, token, note["id"], b"small", name="small")
    finally:
        assert served.stop() == 0

    assert full.status == 507, full.body
    assert "full" in full.json()["detail"] and full.headers["Retry-After"]
    assert (status, page["items"]) == (200, [])
    assert fits.status == 201, "the next upload that fits is stored, with no restart"
    digest = fits.json()["sha256"]
    assert stored_files(small_store) == [f"{digest[:2]}/{digest}"], "no partial file left"
