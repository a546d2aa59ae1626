"""Shared by the schemathesis fuzz tests (in process and over HTTP)."""

import uuid


class UniqueIdempotencyKeys:
    """Give a generated Idempotency-Key reused for another request a key of its own.

    A key is unique per request (the header's description): one reused with another body gets
    the documented 422, which no schema can express. A retry of the same request keeps its key
    and gets the first answer replayed.
    """

    def __init__(self):
        self.requests: dict[str, tuple] = {}

    def apply(self, case) -> None:
        key = (case.headers or {}).get("Idempotency-Key")
        request = (case.method, case.formatted_path, repr(case.body))
        if key is not None and self.requests.setdefault(key, request) != request:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
