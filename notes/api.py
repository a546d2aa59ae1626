from typing import Annotated

from django.http import Http404, HttpResponse
from ninja import Header, Query, Router, Status
from ninja.errors import HttpError
from pydantic import Field, StringConstraints

from idempotency import services as idempotency

from . import selectors, services
from .schemas import NO_NUL, NoteIn, NoteOut, NotePageOut, NotePatch

router = Router(tags=["notes"])

NoteId = Annotated[int, Field(ge=1, le=2**63 - 1)]
SearchText = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1 to 255 printable ASCII characters, unique per note (a UUID): a retry "
        "with the same key and body gets the first answer, with `Idempotent-Replayed: true`, "
        "instead of a second note. Keys are kept 24 hours.",
        example="5f0c8a4e-2b1d-4c6e-9a53-0d1e2f3a4b5c",
    ),
]


def _owned_note(request, note_id: int):
    note = selectors.note_get(owner=request.auth.user, note_id=note_id)
    if note is None:
        raise Http404
    return note


@router.post("", response={201: NoteOut})
def create_note(
    request, response: HttpResponse, payload: NoteIn, idempotency_key: IdempotencyKey = None
):
    owner = request.auth.user
    if idempotency_key is None:
        return Status(201, services.note_create(owner=owner, **payload.dict()))
    if not idempotency.key_is_valid(idempotency_key):
        raise HttpError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")

    def create() -> tuple[int, dict]:
        note = services.note_create(owner=owner, **payload.dict())
        return 201, NoteOut.from_orm(note).model_dump(mode="json")

    try:
        outcome = idempotency.run_once(
            owner=owner,
            key=idempotency_key,
            fingerprint=idempotency.request_fingerprint(
                method=request.method, path=request.path, body=request.body
            ),
            action=create,
        )
    except idempotency.KeyReused:
        raise HttpError(
            422, "Idempotency-Key was already used with a different request; use a new key."
        ) from None
    if outcome.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(outcome.status, outcome.body)


@router.get("", response=NotePageOut)
def list_notes(
    request,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
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


@router.get("/{note_id}", response=NoteOut)
def get_note(request, note_id: NoteId):
    return _owned_note(request, note_id)


@router.patch("/{note_id}", response=NoteOut)
def update_note(request, note_id: NoteId, payload: NotePatch):
    changes = payload.dict(exclude_unset=True)  # the schema refuses nulls, naming the field
    return services.note_update(note=_owned_note(request, note_id), changes=changes)


@router.delete("/{note_id}", response={204: None})
def delete_note(request, note_id: NoteId):
    services.note_delete(note=_owned_note(request, note_id))
    return Status(204, None)
