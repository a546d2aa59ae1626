"""Schemathesis against a running `manage.py serve`, over real HTTP; and the server's own refusals.

tests/api/test_fuzz.py fuzzes the WSGI application in process; this sends the same kind of
requests through the front door (nginx) and granian, whose parsing comes first: a request the
schema calls valid must reach the app and be accepted, and anything refused must be refused
with a documented status.
Bounded: a few random cases per operation besides the coverage phase (well under a minute).
"""

import http.client
import os
import socket
import time
from collections import Counter

import pytest
import schemathesis
import schemathesis.engine
import schemathesis.hooks
from schemathesis.engine import Status, events

from tests.support.fuzzing import UniqueIdempotencyKeys, fuzz_config, seed_from_environment
from tests.support.processes import Server
from tests.support.raw_http import send

MAX_EXAMPLES = int(os.environ.get("FUZZ_HTTP_MAX_EXAMPLES", "3"))

config = fuzz_config(
    seed=seed_from_environment("20261202"),
    max_examples=MAX_EXAMPLES,
    # Stateful chains of valid calls; invalid data is the other phases' job.
    phases={"stateful": {"max-steps": 10, "generation": {"mode": "positive"}}},
    # A hook sets a live token on every request, over the invalid ones this check would
    # send: tests/api/test_authorization_matrix.py covers authentication instead.
    checks={"ignored_auth": {"enabled": False}},
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = Server(
        tmp_path_factory.mktemp("fuzz-http") / "data",
        # Fuzzed logins fail by the hundred from one address: keep the real account usable.
        LOGIN_FAILURES_PER_ADDRESS="1000000",
        LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS="1000000",
        LOGIN_FAILURES_PER_ACCOUNT="1000000",
        LOGIN_SLOWDOWN_MILLISECONDS="0",
        ACCESS_LOG="false",
    )
    yield served
    served.stop()


class Token:
    """The superuser's token; a new one once a case revoked it."""

    def __init__(self, server: Server):
        self.server = server
        self.value = server.token()

    def after(self, case, response) -> None:
        revoking = case.method == "DELETE" and "/auth/token" in case.path
        if revoking and response.status_code == 204 and not self.still_valid():
            self.value = self.server.token()

    def still_valid(self) -> bool:
        return self.server.request("GET", "/api/v1/me", token=self.value)[0] != 401


def failures(event) -> list[str]:
    """What failed in one finished scenario, one line per check."""
    return [
        f"{event.label}: {check.failure_info.failure.title}: {check.failure_info.failure.message}"
        for checks in event.recorder.checks.values()
        for check in checks
        if check.failure_info is not None
    ]


def test_the_running_server_conforms_to_its_schema(server):
    """Every phase: schema examples, coverage, random valid and invalid data, and stateful
    chains of linked calls (the links inferred), with schemathesis's default checks."""
    schema = schemathesis.openapi.from_url(
        f"http://127.0.0.1:{server.port}/api/openapi.json", config=config
    )
    token = Token(server)
    keys = UniqueIdempotencyKeys()

    def before_call(context, case, kwargs):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token.value}"}
        keys.apply(case)

    def after_call(context, case, response):
        sent[response.status_code] += 1
        token.after(case, response)

    sent: Counter = Counter()
    found, errors, phases = [], [], set()
    started = time.monotonic()
    # Call hooks are global in schemathesis: registered for this run only.
    hooks = [schemathesis.hook(before_call), schemathesis.hook(after_call)]
    try:
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.PhaseFinished) and event.status != Status.SKIP:
                phases.add(event.phase.name.value)
            if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
                found.extend(failures(event))
            elif isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.value!r}")
            elif isinstance(event, events.FatalError):
                errors.append(repr(event.exception))
    finally:
        for hook in hooks:
            schemathesis.hooks.unregister(hook)
    print(
        f"\nfuzz over HTTP: {sum(sent.values())} requests in {time.monotonic() - started:.1f} s;"
        f" by status: {dict(sorted(sent.items()))}"
    )

    assert phases >= {"examples", "coverage", "fuzzing", "stateful"}, phases
    assert not errors, errors
    assert not found, "\n".join(sorted(set(found)))
    assert sent[201] and sent[200], "the fuzz reached the handlers"


# -- The server's own refusals -----------------------------------------------------------------


def test_a_long_url_is_answered_in_json_by_the_app(server):
    """The front's bound on a request line follows MAX_URL_BYTES: the app answers these."""
    auth = {"Authorization": f"Bearer {server.token()}"}

    too_long_for_q = send(server.port, "GET", f"/api/v1/notes?q={'a' * 5_000}", headers=auth)
    too_long = send(server.port, "GET", f"/api/v1/notes?q={'a' * 200_000}", headers=auth)
    # Negative control: a URL just within MAX_URL_BYTES reaches the handler.
    within = "/api/v1/notes?tag=fuzz&ignored=" + "a" * (60 * 1024 - 40)
    assert len(within) <= 60 * 1024

    assert too_long_for_q.status == 422, too_long_for_q.body[:200]
    assert too_long_for_q.json()["errors"][0]["field"] == "q"
    assert too_long.status == 414, too_long.body[:200]
    assert too_long.header("Content-Type") == ["application/json"]
    assert "URL" in too_long.json()["detail"]
    assert send(server.port, "GET", within, headers=auth).status == 200


def test_a_control_character_in_a_header_is_refused_by_the_front_before_the_app(server):
    """Documented as an exception (docs/api.md): nginx refuses it itself, as HTTP requires."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n")
        answer = http.client.HTTPResponse(raw)
        answer.begin()
        assert answer.status == 400
        answer.read()
    # The server is still there for everyone else.
    assert server.request("GET", "/readyz")[0] == 200
