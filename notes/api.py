from typing import Annotated

import orjson
from django.http import Http404, HttpResponse
from ninja import Query, Router, Status
from ninja.errors import HttpError
from pydantic import StringConstraints

from core.fields import NO_NUL, DatabaseId
from core.pagination import Cursor
from core.schemas import ErrorOut
from idempotency import api as idempotency
from idempotency import services as idempotency_services
from idempotency.api import IdempotencyKey

from . import import_body, imports, selectors, services
from .schemas import (
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
routes.add_router("/imports", imports_router)
