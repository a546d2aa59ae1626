from datetime import datetime
from typing import Annotated

from ninja import Schema
from pydantic import ConfigDict, Field, StringConstraints

from core.fields import NO_NUL, NO_NUL_NOT_BLANK

from .models import BODY_MAX_LENGTH, MAX_TAGS, TAG_MAX_LENGTH, TITLE_MAX_LENGTH

Title = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH, pattern=NO_NUL_NOT_BLANK
    ),
]
Body = Annotated[str, StringConstraints(max_length=BODY_MAX_LENGTH, pattern=NO_NUL)]
Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=TAG_MAX_LENGTH, pattern=NO_NUL_NOT_BLANK
    ),
]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]


class NoteIn(Schema):
    model_config = ConfigDict(extra="forbid")

    title: Title
    body: Body = ""
    tags: Tags = []


class NotePatch(Schema):
    """Only the fields sent are changed; none of them may be null."""

    model_config = ConfigDict(extra="forbid")

    title: Title = None  # type: ignore[assignment]
    body: Body = None  # type: ignore[assignment]
    tags: Tags = None  # type: ignore[assignment]


class NoteOut(Schema):
    id: int
    title: str
    body: str
    tags: list[str]
    created: datetime
    updated: datetime


class NotePageOut(Schema):
    items: list[NoteOut]
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


IMPORT_MAX_NOTES = 10_000


class ImportIn(Schema):
    model_config = ConfigDict(extra="forbid")

    notes: Annotated[list[NoteIn], Field(min_length=1, max_length=IMPORT_MAX_NOTES)]


class ImportAccepted(Schema):
    id: int
    status: str


class ImportOut(Schema):
    id: int
    status: str = Field(description="queued, running, done or failed")
    imported: int
    total: int
    error: str = Field(description="Why the import failed; empty unless `failed`.")


class ImportPageOut(Schema):
    items: list[ImportOut]
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


class AttachmentOut(Schema):
    id: int
    name: str = Field(description="As sent in `?name=`, control characters replaced by `_`.")
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="Hex digest of the content; the download's ETag.")
    content_type: str = Field(description="As sent in `Content-Type`; sent back on download.")
    created: datetime


class AttachmentPageOut(Schema):
    items: list[AttachmentOut]
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")
