from datetime import datetime
from typing import Annotated

from ninja import Schema
from pydantic import ConfigDict, Field, StringConstraints

# No NUL: PostgreSQL cannot compare text with it, so the lookup would fail instead of not matching.
Credential = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class TokenIn(Schema):
    model_config = ConfigDict(extra="forbid")

    username: Credential
    password: Credential


class TokenOut(Schema):
    token: str
    expires: datetime


class TokenInfoOut(Schema):
    """A token as its owner sees it: never its value, which only its creation returned."""

    id: int
    created: datetime
    expires: datetime
    current: bool = Field(description="The token this request was made with.")


class TokenPageOut(Schema):
    items: list[TokenInfoOut]
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


class UserOut(Schema):
    id: int
    username: str
    email: str
    is_staff: bool
    date_joined: datetime


class UserPageOut(Schema):
    items: list[UserOut]
    next: str | None
