"""Shared by the schemathesis fuzz tests (in process and over HTTP)."""

import os
import uuid

from schemathesis.config import SchemathesisConfig

# A cursor is opaque: any string fits the schema, but only one this API returned is accepted,
# and anything else is a 400 naming the cursor (docs/api.md).
OPAQUE_CURSOR = {
    "include-path": "/api/v1/notes",
    "include-method": "GET",
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", 400, 401, 403, 404, 409, 429]}
    },
}


def seed_from_environment(default: str) -> int | None:
    """FUZZ_SEED (this default unless set); "random" for a new seed each run."""
    seed = os.environ.get("FUZZ_SEED", default)
    return None if seed == "random" else int(seed)


def fuzz_config(
    *, seed: int | None, max_examples: int, phases: dict, **extra
) -> SchemathesisConfig:
    """The settings both fuzz tests share, with their own phases (and any other keys)."""
    return SchemathesisConfig.from_dict(
        {
            **({"seed": seed} if seed is not None else {}),
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "database": "none",
                # Every case carries a live token; the authorization matrix tests the rest.
                "with-security-parameters": False,
                # Unknown query parameters are ignored by design (cache busters, tracing);
                # unknown body fields are refused, as tests/api/test_api_*.py check one by one.
                "allow-extra-parameters": False,
            },
            "phases": phases,
            "operations": [OPAQUE_CURSOR],
            **extra,
        }
    )


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
