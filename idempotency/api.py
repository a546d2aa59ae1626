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

from . import services

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1 to 255 printable ASCII characters, unique per request (a UUID): a retry "
        "with the same key and body gets the first answer, with `Idempotent-Replayed: true`, "
        "instead of a second write. Keys are kept 24 hours.",
        example="5f0c8a4e-2b1d-4c6e-9a53-0d1e2f3a4b5c",
    ),
]


def once(
    request: HttpRequest,
    response: HttpResponse,
    key: str | None,
    status: int,
    write: Callable[[], Schema],
) -> Status:
    """Answer `status` with what `write()` returns, running it at most once per key.

    Without a key, `write()` simply runs. With one, the answer is stored in the write's own
    transaction, and a retry with the same key and body gets it back instead of a second write.
    """
    if key is None:
        return Status(status, write())
    if not services.key_is_valid(key):
        raise HttpError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    try:
        outcome = services.run_once(
            owner=request.auth.user,
            key=key,
            fingerprint=services.request_fingerprint(
                method=request.method, path=request.path, body=request.body
            ),
            action=lambda: (status, write().model_dump(mode="json")),
        )
    except services.KeyReused:
        raise HttpError(
            422, "Idempotency-Key was already used with a different request; use a new key."
        ) from None
    if outcome.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(outcome.status, outcome.body)
