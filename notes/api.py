import functools
import io
from typing import Annotated

import orjson
from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from ninja import Query, Router, Status
from ninja.decorators import decorate_view
from ninja.errors import HttpError
from pydantic import StringConstraints

from core.fields import NO_NUL, DatabaseId
from core.pagination import Cursor
from core.schemas import ErrorOut
from idempotency import api as idempotency
from idempotency.api import IdempotencyKey

from . import imports, selectors, services
from .conf import import_too_large, setting
from .schemas import (
    ImportAccepted,
    ImportIn,
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


def _import_body_limit(run):
    """This endpoint's body limit is IMPORT_MAX_REQUEST_BYTES, not MAX_REQUEST_BYTES.

    The front door refuses a larger body itself (apps.py, large_bodies); this holds where there is
    none (WEB_FRONT=none, the tests). Django checks MAX_REQUEST_BYTES when `request.body` is first
    read, for every view alike, so the body is read here first, under this limit, the way
    `HttpRequest.body` does (into `_body`, then `_stream` for any later read).
    """

    @functools.wraps(run)
    def wrapper(request, *args, **kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django refuses it as usual
        limit = setting("IMPORT_MAX_REQUEST_BYTES")
        if length > limit:
            return JsonResponse({"detail": import_too_large(limit)}, status=413)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            request._body = request.read()
            request._stream = io.BytesIO(request._body)
        return run(request, *args, **kwargs)

    return wrapper


@imports_router.post(
    "",
    response={202: ImportAccepted, 429: ErrorOut},
    openapi_extra={"responses": {429: _too_many_imports}},  # ninja keys them by int
)
@decorate_view(_import_body_limit)
def start_import(
    request, response: HttpResponse, payload: ImportIn, idempotency_key: IdempotencyKey = None
):
    def start() -> ImportAccepted:
        notes = [note.dict() for note in payload.notes]
        job = imports.import_start(owner=request.auth.user, notes=notes)
        return ImportAccepted(id=job.pk, status=job.status)

    answer = idempotency.once(request, response, idempotency_key, 202, start)
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
