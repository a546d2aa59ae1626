from datetime import datetime
from typing import Annotated

from ninja import Schema
from pydantic import ConfigDict, Field, StringConstraints

from .models import BODY_MAX_LENGTH, MAX_TAGS, TAG_MAX_LENGTH, TITLE_MAX_LENGTH

# PostgreSQL cannot store NUL in text: refuse it here, with a message naming the field.
NO_NUL = r"^[^\x00]*$"
# The same for text that is stripped: the schema also says it must not be blank, which
# `min_length=1` enforces after stripping (so this pattern only ever fails on a NUL).
NO_NUL_NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"

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
