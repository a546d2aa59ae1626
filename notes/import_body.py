"""The body of POST /api/v1/imports: up to IMPORT_MAX_REQUEST_BYTES, never whole in memory.

Django checks DATA_UPLOAD_MAX_MEMORY_SIZE (MAX_REQUEST_BYTES) when `request.body` is first read,
for every view alike, and the parsed JSON of a 64 MiB import took five times its size. So this
endpoint's body is never read as `request.body`: `spool` refuses one whose length is over the
import limit (the front door refuses it first, apps.py; this holds where there is none), then
copies it to a temporary file as it is read, hashing it for Idempotency-Key; `notes_from` reads
the notes from that file one at a time, each validated as it comes. Both run only once the
caller's token is good.
"""

import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import ijson
from django.http import HttpRequest
from ninja.errors import HttpError, ValidationError
from pydantic import ValidationError as PydanticError

from .conf import import_too_large, setting
from .schemas import IMPORT_MAX_NOTES, ImportIn, NoteIn

CHUNK_BYTES = 64 * 1024
# ("body", "payload", ...) is how ninja names a body's fields: config/api.py shortens it.
WHERE = ("body", "payload")


def schema() -> dict:
    """ImportIn's JSON schema, its notes pointing at NoteIn in the API's components."""
    found = ImportIn.model_json_schema(ref_template="#/components/schemas/{model}")
    found.pop("$defs", None)  # NoteIn: in the components already, as POST /notes' body
    return found


def spool(request: HttpRequest, fingerprint) -> BinaryIO:
    """The request's body, copied to a temporary file as it is read, and fed to `fingerprint`."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0  # Django refuses it as usual
    limit = setting("IMPORT_MAX_REQUEST_BYTES")
    if length > limit:
        raise HttpError(413, import_too_large(limit))
    content_type = request.content_type or ""  # None only for an HttpRequest() made by hand
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HttpError(415, f"Content-Type must be application/json (got {request.content_type}).")
    body = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    while chunk := request.read(CHUNK_BYTES):
        fingerprint.update(chunk)
        body.write(chunk)
    body.seek(0)
    return body


def notes_from(body: BinaryIO) -> Iterator[dict]:
    """Each note of `{"notes": [...]}`, validated as NoteIn, as the body is read.

    The first invalid note stops the import with its errors (a 422, as ninja would answer):
    the caller stores the notes in one transaction, so nothing of it is kept.
    """
    count = 0
    try:
        for item in ijson.items(_only_notes(ijson.parse(body, use_float=True)), "notes.item"):
            if count == IMPORT_MAX_NOTES:
                _refuse("notes", f"List should have at most {IMPORT_MAX_NOTES} items", "too_long")
            try:
                note = NoteIn.model_validate(item)
            except PydanticError as error:
                raise ValidationError(
                    [{**e, "loc": (*WHERE, "notes", count, *e["loc"])} for e in error.errors()]
                ) from None
            count += 1
            yield note.dict()
    except ijson.JSONError as error:
        raise HttpError(400, f"Request body is not valid JSON: {error}") from None
    if count == 0:
        _refuse("notes", "List should have at least 1 item", "too_short")


def _only_notes(events):
    """The parser's events, refusing anything but an object whose only member is a list `notes`."""
    seen_notes = False
    for prefix, event, value in events:
        if prefix == "" and event == "map_key":
            if value != "notes":
                _refuse(value, "Extra inputs are not permitted", "extra_forbidden")
            seen_notes = True
        elif prefix == "" and event not in ("start_map", "end_map"):
            _refuse("request", "The body must be a JSON object", "model_type")
        elif prefix == "notes" and event not in ("start_array", "end_array"):
            _refuse("notes", "Input should be a valid list", "list_type")
        yield prefix, event, value
    if not seen_notes:
        _refuse("notes", "Field required", "missing")


def _refuse(field: str, message: str, kind: str):
    loc = (*WHERE, field) if field != "request" else ()
    raise ValidationError([{"loc": loc, "msg": message, "type": kind}])
