"""Field types every app's schemas share: what PostgreSQL can store, said once."""

from typing import Annotated

from pydantic import Field

# PostgreSQL's bigint, the type of every id: a larger number would make it refuse the query.
MAX_BIGINT = 2**63 - 1
DatabaseId = Annotated[int, Field(ge=1, le=MAX_BIGINT)]

# PostgreSQL cannot store NUL in text: refuse it in the schema, with a message naming the field.
NO_NUL = r"^[^\x00]*$"
# The same for text that is stripped: the schema also says it must not be blank, which
# `min_length=1` enforces after stripping (so this pattern only ever fails on a NUL).
NO_NUL_NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"

# Friendlier words for pydantic's pattern messages, by pattern (the API's 422 handler).
PATTERN_MESSAGES = {
    NO_NUL: "must not contain NUL characters",
    NO_NUL_NOT_BLANK: "must not contain NUL characters",
}
