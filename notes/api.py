import re
from typing import Annotated

import orjson
from django.http import Http404, HttpResponse
from ninja import Query, Router, Status
from ninja.errors import HttpError
from pydantic import StringConstraints

from core.fields import NO_NUL, DatabaseId
from core.pagination import Cursor
from core.schemas import ErrorOut
from filestore.downloads import download_response
from idempotency import api as idempotency
from idempotency import services as idempotency_services
from idempotency.api import IdempotencyKey

from . import attachments, import_body, imports, selectors, services
from .models import ATTACHMENT_NAME_MAX_LENGTH, CONTENT_TYPE_MAX_LENGTH
from .schemas import (
    AttachmentOut,
    AttachmentPageOut,
    ImportAccepted,
    ImportOut,
    ImportPageOut,
    NoteIn,
    NoteOut,
    NotePageOut,
    NotePatch,
)

router = Router(tags=["notes"])

SearchText = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]


def _owned_note(request, note_id: int):
    note = selectors.note_get(owner=request.auth.user, note_id=note_id)
    if note is None:
        raise Http404
    return note


@router.post("", response={201: NoteOut})
def create_note(
    request, response: HttpResponse, payload: NoteIn, idempotency_key: IdempotencyKey = None
):
    def create() -> NoteOut:
        return NoteOut.from_orm(services.note_create(owner=request.auth.user, **payload.dict()))

    return idempotency.once(request, response, idempotency_key, 201, create)


@router.get("", response=NotePageOut)
def list_notes(
    request,
    limit: Annotated[int, Query(ge=1, le=selectors.PAGE_LIMIT_MAX)] = 20,
    cursor: Cursor = None,
    tag: Annotated[SearchText | None, Query()] = None,
    q: Annotated[SearchText | None, Query(description="Full-text search (web syntax)")] = None,
):
    try:
        page = selectors.note_list(
            owner=request.auth.user, limit=limit, cursor=cursor, tag=tag, query=q
        )
    except selectors.InvalidSearch as error:
        raise HttpError(400, f"q: {error}") from None
    # Sent as the rows came, which already have NotePageOut's types: making and validating up to
    # 100 notes was a third of a page request (docs/performance.md, "List pages").
    # tests/api/test_schema_truth.py holds the answer to the schema.
    body = orjson.dumps({"items": page.items, "next": page.next})
    return HttpResponse(body, content_type="application/json; charset=utf-8")


@router.get("/{note_id}", response=NoteOut)
def get_note(request, note_id: DatabaseId):
    return _owned_note(request, note_id)


@router.patch("/{note_id}", response=NoteOut)
def update_note(request, note_id: DatabaseId, payload: NotePatch):
    changes = payload.dict(exclude_unset=True)  # the schema refuses nulls, naming the field
    return services.note_update(note=_owned_note(request, note_id), changes=changes)


@router.delete("/{note_id}", response={204: None})
def delete_note(request, note_id: DatabaseId):
    services.note_delete(note=_owned_note(request, note_id))
    return Status(204, None)


attachments_router = Router(tags=["attachments"])

# A media type, with parameters: what may be sent back as a Content-Type header as it came.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(
    rf'{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|"[\x20\x21\x23-\x5b\x5d-\x7e]*"))*'
)
AttachmentName = Annotated[
    str,
    Query(
        min_length=1,
        max_length=ATTACHMENT_NAME_MAX_LENGTH,
        description="The file's name, UTF-8 (percent-encoded in the URL). Kept as sent, control "
        "characters replaced by `_`; offered on download without path separators.",
    ),
]
_too_large = (
    "Over ATTACHMENT_MAX_BYTES (from `Content-Length`, before anything is read), or over what "
    "is left of the caller's ATTACHMENT_QUOTA_BYTES; nothing was stored."
)
_storage_full = {
    "description": "The server's file store is full; nothing was stored. Try again after "
    "`Retry-After` seconds.",
    "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}


def _content_type(request) -> str:
    sent = request.META.get("CONTENT_TYPE", "").strip() or "application/octet-stream"
    if (request.content_type or "").lower() == "multipart/form-data":
        raise HttpError(
            415, "Send the file itself as the body (curl --data-binary @FILE), not a form."
        )
    if len(sent) > CONTENT_TYPE_MAX_LENGTH or not _MEDIA_TYPE.fullmatch(sent):
        raise HttpError(415, "Content-Type must be a media type, such as application/pdf.")
    return sent


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "Content-Length must be a number of bytes.") from None


@attachments_router.post(
    "/{note_id}/attachments",
    response={201: AttachmentOut, 413: ErrorOut, 415: ErrorOut, 507: ErrorOut},
    openapi_extra={
        "responses": {
            400: {"description": "`Content-Length` is not a number, or the body was shorter."},
            413: {"description": _too_large},
            415: {
                "description": "A form (`multipart/form-data`): send the file itself; or a "
                "`Content-Type` that is not a media type."
            },
            507: _storage_full,
        },
        # The body is the file, streamed to the store as it is read, not parsed by ninja; an
        # empty body is an empty file. Any media type is kept as the file's (declared as the
        # usual one: OpenAPI cannot say "any but a form", and a form is refused).
        "requestBody": {
            "description": "The file's bytes. Its `Content-Type` (any media type but "
            "`multipart/form-data`) is kept and sent back on download.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "required": False,
        },
    },
)
def upload_attachment(
    request,
    response: HttpResponse,
    note_id: DatabaseId,
    name: AttachmentName,
    idempotency_key: IdempotencyKey = None,
):
    """Attach the request's body to the note, as a file called `name`, of its Content-Type."""
    owner = request.auth.user
    note = _owned_note(request, note_id)
    content_type = _content_type(request)
    size = _declared_length(request)
    retry = idempotency_key is not None and idempotency_services.has_answer(
        owner=owner, key=idempotency_key
    )
    try:
        if not retry:  # a retry gets the first answer, whatever is left of the quota now
            attachments.attachment_check_room(owner=owner, size=size)
        stored = attachments.attachment_receive(stream=request, size=size)
    except attachments.AttachmentRefused as refused:
        raise HttpError(413, str(refused)) from None
    except attachments.BodyIncomplete as incomplete:
        raise HttpError(400, str(incomplete)) from None
    # What makes a retry the same request: the note, the name, the type and the content.
    fingerprint = idempotency_services.fingerprint_hasher(
        method=request.method,
        path=request.path,
        body=f"{name}\0{content_type}\0{stored.sha256}".encode(),
    ).hexdigest()

    def create() -> AttachmentOut:
        made = attachments.attachment_create(
            note=note, stored=stored, name=name, content_type=content_type
        )
        return AttachmentOut.from_orm(made)

    try:
        answer = idempotency.once(request, response, idempotency_key, 201, create, fingerprint)
    except attachments.AttachmentRefused as refused:
        raise HttpError(413, str(refused)) from None
    attachment_id = answer.value["id"] if isinstance(answer.value, dict) else answer.value.id
    response["Location"] = f"{request.path.rstrip('/')}/{attachment_id}"
    return answer


@attachments_router.get("/{note_id}/attachments", response=AttachmentPageOut)
def list_attachments(
    request,
    note_id: DatabaseId,
    limit: Annotated[int, Query(ge=1, le=selectors.PAGE_LIMIT_MAX)] = 20,
    cursor: Cursor = None,
):
    note = _owned_note(request, note_id)
    return attachments.attachment_list(note=note, limit=limit, cursor=cursor)


def _owned_attachment(request, note_id: int, attachment_id: int):
    found = attachments.attachment_get(
        owner=request.auth.user, note_id=note_id, attachment_id=attachment_id
    )
    if found is None:
        raise Http404
    return found


@attachments_router.get("/{note_id}/attachments/{attachment_id}", response=AttachmentOut)
def get_attachment(request, note_id: DatabaseId, attachment_id: DatabaseId):
    return _owned_attachment(request, note_id, attachment_id)


_download = {
    "description": "The file, as an attachment (`Content-Disposition`), with `ETag` (its "
    "sha256), `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`. "
    "Behind the front door, `Range` requests get 206.",
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
}


@attachments_router.get(
    "/{note_id}/attachments/{attachment_id}/content",
    response={200: None, 206: None, 304: None, 416: ErrorOut},
    openapi_extra={
        "responses": {
            200: _download,
            206: {"description": "The part of the file that `Range` asks for."},
            304: {"description": "`If-None-Match` names the file's ETag."},
        }
    },
)
def download_attachment(request, note_id: DatabaseId, attachment_id: DatabaseId):
    attachment = _owned_attachment(request, note_id, attachment_id)
    return download_response(
        request,
        name=attachment.file.name,
        sha256=attachment.sha256,
        size=attachment.size,
        filename=attachment.name,
        content_type=attachment.content_type,
    )


@attachments_router.delete("/{note_id}/attachments/{attachment_id}", response={204: None})
def delete_attachment(request, note_id: DatabaseId, attachment_id: DatabaseId):
    attachments.attachment_delete(attachment=_owned_attachment(request, note_id, attachment_id))
    return Status(204, None)


imports_router = Router(tags=["imports"])


_too_many_imports = {
    "description": "The caller already has IMPORTS_PER_USER imports queued or running; nothing "
    "was stored. Send it again after `Retry-After` seconds, or once one of them is done.",
    "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}


@imports_router.post(
    "",
    response={202: ImportAccepted, 429: ErrorOut},
    openapi_extra={
        "responses": {429: _too_many_imports},  # ninja keys them by int
        # The body is read as a stream (import_body.py), not by ninja: declared for the schema.
        "requestBody": {
            "content": {"application/json": {"schema": import_body.schema()}},
            "required": True,
        },
    },
)
def start_import(request, response: HttpResponse, idempotency_key: IdempotencyKey = None):
    fingerprint = idempotency_services.fingerprint_hasher(method=request.method, path=request.path)
    body = import_body.spool(request, fingerprint)

    def start() -> ImportAccepted:
        job = imports.import_start(owner=request.auth.user, notes=import_body.notes_from(body))
        return ImportAccepted(id=job.pk, status=job.status)

    with body:
        answer = idempotency.once(
            request, response, idempotency_key, 202, start, fingerprint.hexdigest()
        )
    # A replay's answer is the stored body (a dict), a first answer the schema.
    job_id = answer.value["id"] if isinstance(answer.value, dict) else answer.value.id
    response["Location"] = f"{request.path.rstrip('/')}/{job_id}"
    return answer


@imports_router.get("", response=ImportPageOut)
def list_imports(
    request,
    limit: Annotated[int, Query(ge=1, le=selectors.PAGE_LIMIT_MAX)] = 20,
    cursor: Cursor = None,
):
    return imports.import_list(owner=request.auth.user, limit=limit, cursor=cursor)


@imports_router.get("/{import_id}", response=ImportOut)
def get_import(request, import_id: DatabaseId):
    job = imports.import_get(owner=request.auth.user, import_id=import_id)
    if job is None:
        raise Http404
    return job


# Everything the example serves, mounted by config/api.py at /v1 in one line (removing the
# example removes that line: docs/replace-the-example.md).
routes = Router()
routes.add_router("/notes", router)
routes.add_router("/notes", attachments_router)
routes.add_router("/imports", imports_router)
