from typing import Annotated

from django.http import Http404, HttpResponse
from ninja import Query, Router, Status
from ninja.errors import HttpError
from pydantic import StringConstraints

from core.fields import NO_NUL, DatabaseId
from idempotency import api as idempotency
from idempotency.api import IdempotencyKey

from . import selectors, services
from .schemas import NoteIn, NoteOut, NotePageOut, NotePatch

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
    cursor: Annotated[SearchText | None, Query()] = None,
    tag: Annotated[SearchText | None, Query()] = None,
    q: Annotated[SearchText | None, Query(description="Full-text search (web syntax)")] = None,
):
    try:
        return selectors.note_list(
            owner=request.auth.user, limit=limit, cursor=cursor, tag=tag, query=q
        )
    except selectors.InvalidCursor as error:
        raise HttpError(400, f"cursor: {error}") from None
    except selectors.InvalidSearch as error:
        raise HttpError(400, f"q: {error}") from None


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
