"""The shape of every error the API answers (config/api.py builds them)."""

from ninja import Schema
from pydantic import Field


class FieldErrorOut(Schema):
    field: str = Field(description='The input at fault: "title", "tags.2", "limit", "request".')
    message: str
    type: str | None = None


class ErrorOut(Schema):
    detail: str
    errors: list[FieldErrorOut] | None = Field(
        None, description="Present on 422: one entry per invalid input."
    )
