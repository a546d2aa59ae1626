"""Attachments on S3 (FILES_URL, a real SeaweedFS): the app authorises each download and streams
it from the bucket, behind the front door, with the same headers and Range as from a disk."""

import hashlib
import os

from tests.support.attachments import get, upload
from tests.support.processes import Server
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, running_store

BUCKET = "attachments"


def test_a_download_on_s3_is_streamed_with_the_same_headers_and_ranges(tmp_path):
    content = os.urandom(3 * 2**20 + 5)
    digest = hashlib.sha256(content).hexdigest()
    with running_store(tmp_path / "seaweedfs", BUCKET) as store:
        served = Server(
            tmp_path / "data",
            FILES_URL=f"s3://{BUCKET}/files",
            FILES_ENDPOINT_URL=store.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            WEB_CONCURRENCY="1",
        )
        try:
            token = served.token()
            _, note = served.request("POST", "/api/v1/notes", {"title": "s3"}, token=token)
            made = upload(
                served.port, token, note["id"], content, name="évil.html", content_type="text/html"
            )
            assert made.status == 201, made.body
            path = f"/api/v1/notes/{note['id']}/attachments/{made.json()['id']}/content"
            whole = get(served.port, path, token)
            part = get(served.port, path, token, headers={"Range": "bytes=100-199"})
            changed = get(
                served.port, path, token, headers={"Range": "bytes=0-9", "If-Range": '"old"'}
            )
            beyond = get(served.port, path, token, headers={"Range": f"bytes={len(content)}-"})
            keys = store.keys(BUCKET)
        finally:
            assert served.stop() == 0

    assert keys == [f"files/{digest[:2]}/{digest}"]
    assert whole.status == 200 and whole.body == content
    assert whole.headers["Content-Type"] == "text/html"
    assert whole.headers["Content-Disposition"] == "attachment; filename*=utf-8''%C3%A9vil.html"
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert whole.headers["ETag"] == f'"{digest}"'
    assert (part.status, part.body) == (206, content[100:200])
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(content)}"
    assert (changed.status, changed.body) == (200, content)
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(content)}"
    assert beyond.json()["detail"]
