"""Attachments on notes through the API: upload streamed to the store, list, download, delete,
each the owner's only; the limits, each a JSON error with no row and no file left behind."""

import hashlib
import io
from pathlib import Path

import pytest

from filestore.downloads import served_name
from notes.models import Attachment, Note
from server.front_door import LargeBody, large_bodies
from tests.support.attachments import stored_files
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

CONTENT = b"%PDF-1.7 not really\n" * 100


@pytest.fixture(autouse=True)
def store(settings, tmp_path) -> Path:
    """A store and an archive of this test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "protected": {
            "BACKEND": "filestore.storage.ProtectedFileSystemStorage",
            "OPTIONS": {"location": tmp_path / "files"},
        },
    }
    settings.PROTECTED_FILES_ARCHIVE_DIR = tmp_path / "archive"
    return tmp_path / "files"


@pytest.fixture
def note_id(api):
    return api.send("POST", "/api/v1/notes", json={"title": "with files"}).json()["id"]


def upload(api, note_id, content=CONTENT, name="report.pdf", content_type="application/pdf",
           **headers):  # fmt: skip
    return api.post(
        f"/api/v1/notes/{note_id}/attachments?name={name}",
        data=content,
        content_type=content_type,
        headers=headers,
    )


def test_an_upload_is_stored_under_its_sha256_and_described(api, note_id, store, tmp_path):
    response = upload(api, note_id)

    assert response.status_code == 201, response.content
    body = response.json()
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert body == {
        "id": body["id"],
        "name": "report.pdf",
        "size": len(CONTENT),
        "sha256": digest,
        "content_type": "application/pdf",
        "created": body["created"],
    }
    assert response["Location"] == f"/api/v1/notes/{note_id}/attachments/{body['id']}"
    assert stored_files(store) == [f"{digest[:2]}/{digest}"]
    assert (store / digest[:2] / digest).read_bytes() == CONTENT
    assert stored_files(tmp_path / "archive") == [f"{digest[:2]}/{digest}"], "archived first"
    assert api.get(f"/api/v1/notes/{note_id}/attachments/{body['id']}").json() == body
    assert api.get(f"/api/v1/notes/{note_id}/attachments").json() == {"items": [body], "next": None}


def test_the_same_bytes_twice_are_stored_once(api, note_id, store):
    first = upload(api, note_id, name="a.pdf").json()
    second = upload(api, note_id, name="b.pdf").json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert len(stored_files(store)) == 1


def test_a_download_behind_the_front_door_is_sent_by_nginx(api, note_id):
    made = upload(api, note_id).json()
    url = f"/api/v1/notes/{note_id}/attachments/{made['id']}/content"

    answer = api.get(url, headers={"X-Protected-Files-Location": "/_front/files/"})

    assert answer.status_code == 200
    digest = made["sha256"]
    assert answer["X-Accel-Redirect"] == f"/_front/files/{digest[:2]}/{digest}"
    assert answer.content == b""
    assert answer["Content-Type"] == "application/pdf"
    assert answer["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in answer["Content-Security-Policy"]


def test_without_a_front_the_app_streams_the_file(api, note_id, settings):
    made = upload(api, note_id, content_type="text/html", name="page.html").json()
    url = f"/api/v1/notes/{note_id}/attachments/{made['id']}/content"

    answer = api.get(url)  # no front: the header only nginx sets is absent
    settings.WEB_FRONT = "none"
    forged = api.get(url, headers={"X-Protected-Files-Location": "/_front/files/"})

    for each in (answer, forged):
        assert each.status_code == 200
        assert "X-Accel-Redirect" not in each
        assert b"".join(each.streaming_content) == CONTENT
        assert each["Content-Type"] == "text/html"
        assert each["Content-Disposition"] == 'attachment; filename="page.html"'
        assert each["X-Content-Type-Options"] == "nosniff"
        assert each["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert each["ETag"] == f'"{made["sha256"]}"'
    again = api.get(url, headers={"If-None-Match": f'"{made["sha256"]}"'})
    assert again.status_code == 304


def test_others_get_404_for_everything(api, client_for, other_user, note_id):
    made = upload(api, note_id).json()
    other = client_for(other_user)
    base = f"/api/v1/notes/{note_id}/attachments"
    other_note = other.send("POST", "/api/v1/notes", json={"title": "theirs"}).json()["id"]

    json_error(upload(other, note_id), 404)
    json_error(other.get(base), 404)
    json_error(other.get(f"{base}/{made['id']}"), 404)
    json_error(other.get(f"{base}/{made['id']}/content"), 404)
    json_error(other.delete(f"{base}/{made['id']}"), 404)
    # Their own note's path with this attachment's id: still not theirs.
    json_error(other.get(f"/api/v1/notes/{other_note}/attachments/{made['id']}/content"), 404)
    assert Attachment.objects.count() == 1
    assert api.delete(f"{base}/{made['id']}").status_code == 204
    json_error(api.get(f"{base}/{made['id']}"), 404)
    assert Attachment.objects.count() == 0


def test_idempotency_key_replays_the_first_answer(api, note_id):
    key = {"Idempotency-Key": "attach-1"}
    first = upload(api, note_id, **key)
    again = upload(api, note_id, **key)
    other = upload(api, note_id, content=b"different", **key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert json_error(other, 422)["detail"].startswith("Idempotency-Key was already used")
    assert Attachment.objects.count() == 1


def test_a_retry_is_replayed_even_once_the_quota_is_used_up(api, note_id, settings):
    settings.ATTACHMENT_QUOTA_BYTES = len(CONTENT) + 10
    key = {"Idempotency-Key": "attach-quota"}
    assert upload(api, note_id, **key).status_code == 201
    assert upload(api, note_id, **key).status_code == 201
    json_error(upload(api, note_id), 413)


def test_over_the_size_limit_is_a_413_and_nothing_is_stored(api, note_id, settings, store):
    settings.ATTACHMENT_MAX_BYTES = len(CONTENT) - 1

    body = json_error(upload(api, note_id), 413)

    assert "ATTACHMENT_MAX_BYTES" in body["detail"]
    assert Attachment.objects.count() == 0
    assert stored_files(store) == []


def test_over_the_quota_is_a_413_and_nothing_is_stored(api, note_id, settings, store):
    settings.ATTACHMENT_QUOTA_BYTES = 2 * len(CONTENT) + 1
    upload(api, note_id, name="1")
    upload(api, note_id, content=CONTENT + b"x", name="2")  # one byte more: different bytes

    third = json_error(upload(api, note_id, content=b"!" * 100, name="3"), 413)

    assert "ATTACHMENT_QUOTA_BYTES" in third["detail"]
    assert Attachment.objects.count() == 2
    assert len(stored_files(store)) == 2


def test_a_full_store_is_a_507_with_retry_after_and_nothing_is_left(
    api, note_id, store, monkeypatch
):
    # The disk filling for real is tests/system/test_attachments_front.py; here, the answer.
    import filestore.durable

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(filestore.durable.os, "fsync", full)
    response = upload(api, note_id)

    assert json_error(response, 507)["detail"]
    assert response["Retry-After"]
    assert Attachment.objects.count() == 0
    assert stored_files(store) == []


@pytest.mark.parametrize(
    ("sent", "stored", "served"),
    [
        ("../../etc/passwd", "../../etc/passwd", 'attachment; filename="_.._etc_passwd"'),
        ("a\\b/c.txt", "a\\b/c.txt", 'attachment; filename="a_b_c.txt"'),
        ("nul%00byte.txt", "nul_byte.txt", 'attachment; filename="nul_byte.txt"'),
        ("line%0D%0ABreak: 1", "line__Break: 1", 'attachment; filename="line__Break: 1"'),
        ('qu"ote.txt', 'qu"ote.txt', 'attachment; filename="qu\\"ote.txt"'),
        ("r%C3%A9sum%C3%A9.pdf", "résumé.pdf", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"),
    ],
)
def test_names_are_stored_as_sent_and_served_safely(api, note_id, sent, stored, served):
    made = upload(api, note_id, name=sent)
    assert made.status_code == 201, made.content
    assert made.json()["name"] == stored
    answer = api.get(f"/api/v1/notes/{note_id}/attachments/{made.json()['id']}/content")
    assert answer["Content-Disposition"] == served


def test_a_1000_character_name_is_kept_and_served_shortened(api, note_id):
    name = "é" * 996 + ".pdf"
    made = upload(api, note_id, name=name)
    assert made.status_code == 201, made.content
    assert made.json()["name"] == name
    served = served_name(name)
    assert served.endswith(".pdf") and len(served.encode()) <= 255
    json_error(upload(api, note_id, name="x" * 1001), 422)
    json_error(upload(api, note_id, name=""), 422)


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x", "not a type", "text/plain; a=\x7f"]
)
def test_a_form_or_a_bad_content_type_is_a_415(api, note_id, content_type):
    json_error(upload(api, note_id, content_type=content_type), 415)
    assert Attachment.objects.count() == 0


def test_deleting_the_note_deletes_its_attachments_rows(api, note_id):
    upload(api, note_id)
    assert api.delete(f"/api/v1/notes/{note_id}").status_code == 204
    assert Attachment.objects.count() == 0


def test_the_front_door_takes_uploads_up_to_the_limit_once_authorised(settings):
    settings.ATTACHMENT_MAX_BYTES = 4321
    [upload_location] = [body for body in large_bodies() if body.path.startswith("^")]
    assert upload_location == LargeBody(
        path="^/api/v1/notes/[0-9]+/attachments$",
        max_bytes=4321,
        too_large="An attachment is at most 4321 bytes (ATTACHMENT_MAX_BYTES); nothing was stored.",
    )
    assert upload_location.location == '~ "^/api/v1/notes/[0-9]+/attachments$"'


def test_every_status_is_in_the_schema(api):
    paths = api.get("/api/openapi.json").json()["paths"]
    upload_responses = paths["/api/v1/notes/{note_id}/attachments"]["post"]["responses"]
    download = paths["/api/v1/notes/{note_id}/attachments/{attachment_id}/content"]["get"]
    assert {"201", "401", "404", "413", "415", "422", "507"} <= set(upload_responses)
    assert "Retry-After" in upload_responses["507"]["headers"]
    assert {"200", "206", "304", "401", "404"} <= set(download["responses"])


def test_the_notes_admin_page_shows_attachments_with_a_download_link(
    api, note_id, make_user, client, user, client_for
):
    made = upload(api, note_id, name="<b>bold</b>.pdf").json()
    staff = make_user("staff", is_staff=True, is_superuser=True)
    client.force_login(staff)

    page = client.get(f"/admin/notes/note/{note_id}/change/")
    link = f"/admin/notes/note/{note_id}/attachments/{made['id']}/"
    download = client.get(link)
    client.force_login(make_user("not-staff"))
    refused = client.get(link)

    assert page.status_code == 200
    assert b"&lt;b&gt;bold&lt;/b&gt;.pdf" in page.content and b"<b>bold" not in page.content
    assert made["sha256"].encode() in page.content and link.encode() in page.content
    assert b'name="attachments-0-name"' not in page.content, "read-only"
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == CONTENT
    assert download["Content-Disposition"] == 'attachment; filename="<b>bold<_b>.pdf"'
    assert refused.status_code == 302, "to the admin's login"


def test_a_note_is_added_in_the_admin_with_its_own_fields_only(make_user, client, user):
    """The add page has no attachments' formset (attachments come through the API), so its form
    posts as the tutorial and the container test fill it in."""
    client.force_login(make_user("staff", is_staff=True, is_superuser=True))

    added = client.post(
        "/admin/notes/note/add/",
        {"owner": user.pk, "title": "from the admin", "body": "", "tags": "", "_save": "Save"},
    )

    assert added.status_code == 302, added.content[:500]
    assert Note.objects.filter(owner=user, title="from the admin").exists()


def test_a_body_shorter_than_its_length_is_a_400_and_names_nothing(api, note_id):
    response = api.generic(
        "POST",
        f"/api/v1/notes/{note_id}/attachments?name=short",
        data=b"only this",
        content_type="text/plain",
        # As a client gone midway leaves it, with no front door to have read the body first.
        CONTENT_LENGTH="100",
        **{"wsgi.input": io.BytesIO(b"only this")},
    )
    assert "ended after 9 of the 100 bytes" in json_error(response, 400)["detail"]
    assert Attachment.objects.count() == 0
