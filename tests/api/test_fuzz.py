"""Schemathesis against the API's own OpenAPI schema, in process, on the test database.

Every operation gets schema examples, the coverage phase (boundary values, each required part
missing, wrong types) and random valid and invalid requests, sent with a live token of a staff
user so they reach the real handlers. Every response must be a documented status with a body
that matches the schema, never a 5xx; valid input must be accepted and invalid input refused.
Stateful chains of calls (an id or cursor one answer returned, used by the next) run on their own;
tests/system/test_fuzz_http.py sends the same over HTTP to a running `serve`.

Search text (`q`) is also fuzzed on its own with hypothesis, weighted towards websearch syntax:
PostgreSQL parses it, and refused some of it (runs of NOTs) with a 500.

The suite runs a bounded number of cases per operation; README ("Fuzzing") has the longer run.
"""

import itertools
import os
import random
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, seed, settings

from accounts.models import LoginFailure
from accounts.services import token_create
from config.wsgi import application
from notes.services import note_create
from tests.support.fuzzing import UniqueIdempotencyKeys, fuzz_config, seed_from_environment
from tests.support.permissions import grant
from tests.support.search_text import search_texts

# Few random cases per operation in the suite (the coverage phase adds its own, ~35 each);
# FUZZ_SEED=random for a different run each time.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
# Search text reaches PostgreSQL's own parser, which refuses some of it: fuzzed on its own.
SEARCH_EXAMPLES = int(os.environ.get("FUZZ_SEARCH_EXAMPLES", "200"))
# Stateful scenarios (chains of up to 10 linked calls) in the suite.
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "8"))
SEED = seed_from_environment("20261125")

config = fuzz_config(
    seed=SEED,
    max_examples=MAX_EXAMPLES,
    # The stateful phase runs in its own test below (the links are inferred).
    phases={
        "stateful": {
            "enabled": True,
            "max-steps": 10,
            # Chains of valid calls; invalid data is the parametrized test's job.
            "generation": {"mode": "positive"},
            # The token is set by the test: what schemathesis would generate is replaced.
            "checks": {"ignored_auth": {"enabled": False}},
        }
    },
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application, config=config)

cases_sent: Counter = Counter()
user_numbers = itertools.count()


@pytest.fixture(autouse=True)
def _one_database_connection():
    """Keep the test's connection (and its transaction) open across the app's requests.

    Django's test client does the same; schemathesis calls the WSGI application directly.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    total = sum(cases_sent.values())
    print(f"\nfuzz: {total} cases sent; by status: {dict(sorted(cases_sent.items()))}")


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_conforms_to_its_schema(case, django_user_model):
    # Each case as a new staff user (who may view users) with a few notes and a live token:
    # nothing an earlier case did (revoke its token, spend an Idempotency-Key) changes what this
    # one may expect. Nor do earlier failed logins throttle this one.
    fuzzer = fuzzing_staff_user(django_user_model, f"fuzzer-{next(user_numbers)}")
    raw, _ = token_create(user=fuzzer)
    LoginFailure.objects.all().delete()

    response = case.call_and_validate(headers={"Authorization": f"Bearer {raw}"})

    cases_sent[response.status_code] += 1


def fuzzing_staff_user(django_user_model, name: str):
    """A staff user who may view users, with a few notes: every operation reaches its handler."""
    fuzzer = django_user_model.objects.create_user(username=name, password="-", is_staff=True)
    grant(fuzzer, "auth.view_user")
    for number in range(3):
        note_create(owner=fuzzer, title=f"note {number}", body="", tags=["fuzz"])
    return fuzzer


def test_api_workflows_conform_to_their_schema(django_user_model):
    """Stateful: chains of calls, each using what an earlier answer returned (ids, cursors).

    The links between operations are inferred by schemathesis (Location headers, matching
    field names). Each scenario gets a new token: one may revoke its own.
    """
    fuzzer = fuzzing_staff_user(django_user_model, "stateful-fuzzer")
    LoginFailure.objects.all().delete()
    keys = UniqueIdempotencyKeys()  # the fuzzer's keys are kept across scenarios

    class Workflow(schema.as_state_machine()):
        def setup(self):
            self.token, _ = token_create(user=fuzzer)

        def before_call(self, case):
            keys.apply(case)

        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {self.token}"}}

        def after_call(self, response, case):
            super().after_call(response, case)
            cases_sent[response.status_code] += 1

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            **({"derandomize": True} if SEED is not None else {}),
        )
    )


@pytest.fixture
def searchable(user):
    for title, body in [("Running notes", "ran 5 km"), ("e-mail drafts", "-x- or (y)")]:
        note_create(owner=user, title=title, body=body, tags=[])


@given(text=search_texts())
@settings(
    max_examples=SEARCH_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@seed(SEED if SEED is not None else random.getrandbits(64))
def test_any_search_text_is_searched_never_a_500(api, searchable, text):
    # Not even a 400: notes.selectors.search_text leaves nothing PostgreSQL refuses.
    response = api.get("/api/v1/notes", {"q": text})

    cases_sent[response.status_code] += 1
    assert response.status_code == 200, (text, response.content)
