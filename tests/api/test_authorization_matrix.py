"""Who may do what: every endpoint against every kind of caller, and what each refusal leaves.

The objects (a note, a second token) belong to alice, the owner. The inactive, expired and
revoked callers are alice too, so a refusal there is about the credential, not the object.
Another user's object answers 404, exactly like a missing one; staff have no extra rights over
other people's notes or tokens, only the user list, and that only with the auth.view_user
permission (as in the admin): "bare staff" lacks it.
"""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import token_create, token_revoke
from notes.attachments import attachment_create, attachment_receive
from notes.imports import import_start
from notes.models import Attachment, Note
from notes.services import note_create
from tests.support.api import PASSWORD, ApiClient
from tests.support.errors import json_error
from tests.support.permissions import grant

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "owner", "other", "staff", "bare staff", "inactive", "expired", "revoked"]

# endpoint: (method, path, JSON body)
ENDPOINTS = {
    "me": ("GET", "/api/v1/me", None),
    "logout": ("DELETE", "/api/v1/auth/token", None),
    "list tokens": ("GET", "/api/v1/auth/tokens", None),
    "revoke a token": ("DELETE", "/api/v1/auth/tokens/{token}", None),
    "list users": ("GET", "/api/v1/users", None),
    "create note": ("POST", "/api/v1/notes", {"title": "new"}),
    "list notes": ("GET", "/api/v1/notes", None),
    "read note": ("GET", "/api/v1/notes/{note}", None),
    "edit note": ("PATCH", "/api/v1/notes/{note}", {"title": "changed"}),
    "delete note": ("DELETE", "/api/v1/notes/{note}", None),
    "start import": ("POST", "/api/v1/imports", {"notes": [{"title": "imported"}]}),
    "list imports": ("GET", "/api/v1/imports", None),
    "read import": ("GET", "/api/v1/imports/{job}", None),
    "attach a file": ("POST", "/api/v1/notes/{note}/attachments?name=a.json", {"a": 1}),
    "list attachments": ("GET", "/api/v1/notes/{note}/attachments", None),
    "read attachment": ("GET", "/api/v1/notes/{note}/attachments/{attachment}", None),
    "download attachment": ("GET", "/api/v1/notes/{note}/attachments/{attachment}/content", None),
    "delete attachment": ("DELETE", "/api/v1/notes/{note}/attachments/{attachment}", None),
}

_ = 401  # refused credentials: no token, or one that is inactive, expired or revoked
#                   anonymous owner other staff bare-staff inactive expired revoked
EXPECTED = {
    "me":             [_, 200, 200, 200, 200, _, _, _],
    "logout":         [_, 204, 204, 204, 204, _, _, _],
    "list tokens":    [_, 200, 200, 200, 200, _, _, _],
    "revoke a token": [_, 204, 404, 404, 404, _, _, _],
    "list users":     [_, 403, 403, 200, 403, _, _, _],
    "create note":    [_, 201, 201, 201, 201, _, _, _],
    "list notes":     [_, 200, 200, 200, 200, _, _, _],
    "read note":      [_, 200, 404, 404, 404, _, _, _],
    "edit note":      [_, 200, 404, 404, 404, _, _, _],
    "delete note":    [_, 204, 404, 404, 404, _, _, _],
    "start import":   [_, 202, 202, 202, 202, _, _, _],
    "list imports":   [_, 200, 200, 200, 200, _, _, _],
    "read import":    [_, 200, 404, 404, 404, _, _, _],
    "attach a file":  [_, 201, 404, 404, 404, _, _, _],
    "list attachments": [_, 200, 404, 404, 404, _, _, _],
    "read attachment": [_, 200, 404, 404, 404, _, _, _],
    "download attachment": [_, 200, 404, 404, 404, _, _, _],
    "delete attachment": [_, 204, 404, 404, 404, _, _, _],
}  # fmt: skip

CASES = [
    pytest.param(endpoint, caller, status, id=f"{endpoint}-{caller}")
    for endpoint, statuses in EXPECTED.items()
    for caller, status in zip(CALLERS, statuses, strict=True)
]


@pytest.fixture
def world(make_user, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "protected": {
            "BACKEND": "filestore.storage.ProtectedFileSystemStorage",
            "OPTIONS": {"location": tmp_path / "files"},
        },
    }
    settings.PROTECTED_FILES_ARCHIVE_DIR = tmp_path / "archive"
    alice, bob = make_user("alice"), make_user("bob")
    staff = make_user("staff", is_staff=True)
    grant(staff, "auth.view_user")
    bare_staff = make_user("bare-staff", is_staff=True)
    note = note_create(owner=alice, title="alice's", body="private", tags=["x"])
    _, spare_token = token_create(user=alice)
    job = import_start(owner=alice, notes=[{"title": "queued", "body": "", "tags": []}])
    stored = attachment_receive(stream=io.BytesIO(b"alice's file"), size=12)
    attachment = attachment_create(
        note=note, stored=stored, name="alice.txt", content_type="text/plain"
    )
    return {
        "attachment": attachment,
        "job": job,
        "alice": alice,
        "bob": bob,
        "staff": staff,
        "bare staff": bare_staff,
        "note": note,
        "token": spare_token,
    }


def client_as(caller: str, world: dict) -> ApiClient:
    if caller == "anonymous":
        return ApiClient()
    others = {"other": world["bob"], "staff": world["staff"], "bare staff": world["bare staff"]}
    user = others.get(caller, world["alice"])
    raw, token = token_create(user=user)
    if caller == "inactive":
        user.is_active = False
        user.save(update_fields=["is_active"])
    elif caller == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    elif caller == "revoked":
        token_revoke(token=token)
    return ApiClient(raw)


def test_the_matrix_covers_every_api_operation():
    from config.api import api

    schema = api.get_openapi_schema()
    operations = {
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if path != "/api/v1/auth/token" or method != "post"  # the login: below
    }
    covered = {
        (
            method,
            path.replace("{token}", "{token_id}")
            .replace("{note}", "{note_id}")
            .replace("{job}", "{import_id}")
            .replace("{attachment}", "{attachment_id}")
            .partition("?")[0],
        )
        for method, path, _ in ENDPOINTS.values()
    }
    assert operations == covered


@pytest.mark.parametrize(("endpoint", "caller", "expected"), CASES)
def test_authorization(world, endpoint, caller, expected):
    method, path, payload = ENDPOINTS[endpoint]
    client = client_as(caller, world)
    note, token = world["note"], world["token"]

    job = world["job"]
    attachment = world["attachment"]
    response = client.send(
        method,
        path.format(note=note.pk, token=token.pk, job=job.pk, attachment=attachment.pk),
        json=payload,
    )

    assert response.status_code == expected, response.content
    if expected >= 400:
        json_error(response, expected)
    if expected == 404:
        assert response.json() == {"detail": "Not found."}
    if expected == 401:
        assert response.json() == {"detail": "Unauthorized"}

    # What the owner may change, changed for the owner only.
    note_left = Note.objects.filter(pk=note.pk).first()
    if caller == "owner" and endpoint == "delete note":
        assert note_left is None
    elif caller == "owner" and endpoint == "edit note":
        assert note_left.title == "changed"
    else:
        assert (note_left.title, note_left.body) == ("alice's", "private")
    attachment_left = Attachment.objects.filter(pk=attachment.pk).exists()
    assert attachment_left is not (
        caller == "owner" and endpoint in ("delete attachment", "delete note")
    )
    assert Attachment.objects.exclude(owner=world["alice"]).count() == 0
    # Deactivating alice (the inactive caller) deleted every token of hers, the spare included.
    spare_left = ApiToken.objects.filter(pk=token.pk).exists()
    assert spare_left is not (
        caller == "inactive" or (caller == "owner" and endpoint == "revoke a token")
    )


@pytest.mark.parametrize("caller", ["other", "staff", "bare staff"])
def test_nobody_else_sees_the_owners_notes_or_tokens_in_lists(world, caller):
    client = client_as(caller, world)

    notes = client.get("/api/v1/notes").json()["items"]
    tokens = client.get("/api/v1/auth/tokens").json()["items"]

    assert world["note"].pk not in [item["id"] for item in notes]
    assert world["token"].pk not in [item["id"] for item in tokens]
    assert len(tokens) == 1 and tokens[0]["current"]
    assert client.get("/api/v1/imports").json()["items"] == []


@pytest.mark.parametrize(
    ("username", "expected"),
    [("alice", 201), ("bob", 201), ("staff", 201), ("carol", 401), ("nobody", 401)],
)
def test_login_works_for_active_users_only(world, make_user, username, expected):
    make_user("carol", is_active=False)
    # A bearer token on the login request changes nothing: even a revoked one.
    client = client_as("revoked", world)

    response = client.send(
        "POST", "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
    )

    assert response.status_code == expected, response.content
