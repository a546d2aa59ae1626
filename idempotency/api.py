"""`Idempotency-Key` for any POST: declare the header with `IdempotencyKey`, answer with `once`.

@router.post("", response={201: NoteOut})
def create_note(request, response: HttpResponse, payload: NoteIn,
                idempotency_key: IdempotencyKey = None):
    return idempotency.once(request, response, idempotency_key, 201, lambda: NoteOut...)
"""

from collections.abc import Callable
from typing import Annotated

from django.http import HttpRequest, HttpResponse
from ninja import Header, Schema, Status
from ninja.errors import HttpError

from observability import events

from . import services

# What the schema promises, so that every key it calls valid is accepted: printable ASCII as
# services.KEY_PATTERN accepts, without a space at either end, which HTTP servers strip from a
# header's value before the app sees it. `once` refuses anything else with a 400 naming the header.
KEY_SCHEMA_PATTERN = rf"^[\x21-\x7e](?:[\x20-\x7e]{{0,{services.KEY_MAX_LENGTH - 2}}}[\x21-\x7e])?$"

_header = Header(
    alias="Idempotency-Key",
    description="1 to 255 printable ASCII characters, no space at either end, unique per request "
    "(a UUID): a retry with the same key and body gets the first answer, with "
    "`Idempotent-Replayed: true`, instead of a second write. Keys are kept 24 hours.",
    example="5f0c8a4e-2b1d-4c6e-9a53-0d1e2f3a4b5c",
)
# Declared for the schema only: as a validation rule it would be a 422 quoting the pattern.
_header.json_schema_extra |= {
    "pattern": KEY_SCHEMA_PATTERN,
    "minLength": 1,
    "maxLength": services.KEY_MAX_LENGTH,
}
IdempotencyKey = Annotated[str | None, _header]


def once(
    request: HttpRequest,
    response: HttpResponse,
    key: str | None,
    status: int,
    write: Callable[[], Schema],
    fingerprint: str | None = None,
) -> Status:
    """Answer `status` with what `write()` returns, running it at most once per key.

    Without a key, `write()` simply runs. With one, the answer is stored in the write's own
    transaction, and a retry with the same key and body gets it back instead of a second write.
    `fingerprint`: the request's, when its body is read as a stream, not as `request.body`
    (services.fingerprint_hasher).
    """
    if key is None:
        return Status(status, write())
    if not services.key_is_valid(key):
        raise HttpError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    assert request.method is not None  # None only for an HttpRequest() made by hand
    try:
        outcome = services.run_once(
            # Set by django-ninja's auth (the caller's token), unknown to Django's stubs.
            owner=request.auth.user,  # type: ignore[attr-defined]
            key=key,
            fingerprint=fingerprint
            or services.request_fingerprint(
                method=request.method, path=request.path, body=request.body
            ),
            action=lambda: (status, write().model_dump(mode="json")),
        )
    except services.KeyReused:
        events.idempotency_conflict()
        raise HttpError(
            422, "Idempotency-Key was already used with a different request; use a new key."
        ) from None
    if outcome.replayed:
        events.idempotent_replay()
        response["Idempotent-Replayed"] = "true"
    return Status(outcome.status, outcome.body)
