"""The django-bolt peer's routes: the notes API as far as the benchmark calls it.

Async handlers and Django's async ORM, as django-bolt's docs write them. The token is looked up
in the database in Python (django-bolt's own authentication, in Rust, knows JWTs and a fixed set
of API keys only): one query per request, like the app's.
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Q
from django.utils import timezone
from django_bolt import BoltAPI
from django_bolt.exceptions import BadRequest, NotFound, Unauthorized
from django_bolt.params import Header
from django_bolt.responses import PlainText

from accounts.models import ApiToken, hash_token
from bench.bolt_peer.models import Note

# Without a log line per request, like the configurations it is measured against.
api = BoltAPI(enable_logging=False)

FIELDS = ("id", "title", "body", "tags", "created", "updated")
PAGE_SIZE, PAGE_SIZE_MAX = 20, 100


async def token_of(authorization: str) -> ApiToken:
    """The live token of `Authorization: Bearer <token>`, with its active user, in one query."""
    scheme, _, raw = authorization.partition(" ")
    if scheme.lower() != "bearer" or not raw:
        raise Unauthorized(detail="Unauthorized")
    try:
        return await ApiToken.objects.select_related("user").aget(
            key_hash=hash_token(raw), expires__gt=timezone.now(), user__is_active=True
        )
    except ApiToken.DoesNotExist:
        raise Unauthorized(detail="Unauthorized") from None


# Each handler names the header and calls token_of itself, rather than through a `Depends`:
# django-bolt 0.3.12 passes a handler only the parts of the request its own parameters name,
# so a dependency that reads a header finds none unless the handler names it too.
Authorization = Annotated[str, Header(alias="authorization")]


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Annotated[str, msgspec.Meta(max_length=100_000)] = ""
    tags: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=50)]], msgspec.Meta(max_length=20)
    ] = []


@api.get("/healthz")
async def healthz():
    """What the benchmark waits for before loading the peer."""
    return PlainText("ok")


@api.get("/api/v1/notes/{note_id}")
async def get_note(note_id: int, authorization: Authorization = ""):
    token = await token_of(authorization)
    note = await Note.objects.filter(owner_id=token.user_id, pk=note_id).values(*FIELDS).afirst()
    if note is None:
        raise NotFound(detail="Not Found")
    return note


@api.get("/api/v1/notes")
async def list_notes(
    authorization: Authorization = "",
    limit: int = PAGE_SIZE,
    cursor: str | None = None,
    q: str | None = None,
):
    """The app's page contract: newest first, keyset on (created, id), `next` last."""
    token = await token_of(authorization)
    if not 1 <= limit <= PAGE_SIZE_MAX:
        raise BadRequest(detail=f"limit: from 1 to {PAGE_SIZE_MAX}")
    notes = Note.objects.filter(owner_id=token.user_id)
    if q:
        # The app's search document, so that its GIN index answers here too.
        document = SearchVector("title", "body", config="english")
        found = SearchQuery(q, config="english", search_type="websearch")
        notes = notes.alias(document=document).filter(document=found)
    if cursor:
        created, note_id = _decode(cursor)
        # The first condition lets the (owner, created, id) index start at the cursor (as in
        # the app).
        notes = notes.filter(created__lte=created).filter(
            Q(created__lt=created) | Q(created=created, pk__lt=note_id)
        )
    rows = [row async for row in notes.order_by("-created", "-id").values(*FIELDS)[: limit + 1]]
    last = rows[limit - 1] if len(rows) > limit else None
    return {"items": rows[:limit], "next": _encode(last["created"], last["id"]) if last else None}


@api.post("/api/v1/notes", status_code=201)
async def create_note(payload: NoteIn, authorization: Authorization = ""):
    token = await token_of(authorization)
    note = await Note.objects.acreate(
        owner_id=token.user_id, title=payload.title, body=payload.body, tags=payload.tags
    )
    return {field: getattr(note, field) for field in FIELDS}


def _encode(created: datetime, note_id: int) -> str:
    raw = f"{created.isoformat()}|{note_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        created, note_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).split(b"|")
        return datetime.fromisoformat(created.decode()).astimezone(UTC), int(note_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(detail="cursor: not one this API returned") from None
