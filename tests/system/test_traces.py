"""Traces, opt-in: with OTEL_EXPORTER_OTLP_ENDPOINT, a real `serve` exports its requests' spans,
their database queries inside, each request span carrying the request id."""

import subprocess
import sys
import time

from tests.support.otlp import TraceCollector
from tests.support.processes import REPO, Server, command_env, free_port


def test_with_an_endpoint_each_request_is_a_trace_with_its_queries_and_request_id(tmp_path):
    collector = TraceCollector()
    server = Server(
        tmp_path / "data",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds: export at once, not every 5 s
        METRICS_PORT=str(free_port()),
        WEB_CONCURRENCY="1",
    )
    try:
        token = server.token()
        status, _ = server.request("POST", "/api/v1/notes", {"title": "t", "body": "b"}, token)
        assert status == 201
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            posts = [s for s in collector.spans() if s[0].startswith("POST")]
            if any(span[1].get("keepnotes.request_id") for span in posts):
                break
            time.sleep(0.2)
    finally:
        server.stop()
        collector.stop()
    spans = collector.spans()
    (request_span,) = [s for s in spans if s[0].startswith("POST") and "notes" in s[0]]
    assert len(request_span[1]["keepnotes.request_id"]) == 32
    queries = [s for s in spans if s[2] == request_span[2] and s[0] != request_span[0]]
    assert queries, "the request's database queries are spans of its trace"


def test_without_an_endpoint_opentelemetry_is_never_imported():
    script = (
        "import sys, django; django.setup(); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry'))[:1])"
    )
    environ = command_env(REPO / ".data-unused", DJANGO_SETTINGS_MODULE="tests.support.settings")
    environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    off = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=environ, capture_output=True, text=True
    )
    assert off.stdout.strip() == "[]", off.stderr
    # Negative control: the same with an endpoint does import it.
    on = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
    )
    assert on.stdout.strip().startswith("['opentelemetry"), on.stderr
