"""Traces, opt-in: with OTEL_EXPORTER_OTLP_ENDPOINT, a real `serve` exports its requests' spans,
their database queries inside, each request span carrying the request id."""

import http.client
import secrets
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


def get_with_traceparent(port: int, path: str, token: str, trace_id: str, source: str) -> int:
    """GET from the loopback address `source`, carrying a sampled W3C `traceparent`."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    headers = {"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{'1' * 16}-01"}
    connection.request("GET", path, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


def test_only_a_trusted_proxy_chooses_the_trace_and_spans_hold_no_query_strings(tmp_path):
    """A client's sampled traceparent neither forces a span past a ratio of 0 nor names its
    trace; a trusted proxy's does (the control that the header is read at all). The search
    term in the query string reaches no span: URL and statement parameters are left out."""
    collector = TraceCollector()
    server = Server(
        tmp_path / "data",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
        DJANGO_TRUSTED_PROXIES="127.0.0.2/32",
        METRICS_PORT=str(free_port()),
        WEB_CONCURRENCY="1",
    )
    client_trace, proxy_trace = secrets.token_hex(16), secrets.token_hex(16)
    try:
        token = server.token()
        path = "/api/v1/notes?q=aardvark-{}"
        assert (
            get_with_traceparent(server.port, path.format(1), token, client_trace, "127.0.0.1")
            == 200
        )
        assert (
            get_with_traceparent(server.port, path.format(2), token, proxy_trace, "127.0.0.2")
            == 200
        )
        # One worker, one export queue: once the later request's span is in, so is the earlier's.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(
                span[2] == proxy_trace and span[0].startswith("GET") for span in collector.spans()
            ):
                break
            time.sleep(0.2)
    finally:
        server.stop()
        collector.stop()
    spans = collector.spans()
    assert [s[2] for s in spans if s[0].startswith("GET")] == [proxy_trace], (
        "a trusted proxy's trace is continued; the client's neither names a trace nor forces one"
    )
    (request_span,) = [s for s in spans if s[0].startswith("GET")]
    # The path alone: granian has no raw target, so the URL is the one attribute that names it.
    assert request_span[1]["http.url"] == f"http://127.0.0.1:{server.port}/api/v1/notes"
    leaked = [
        (span[0], key) for span in spans for key, value in span[1].items() if "aardvark" in value
    ]
    assert leaked == [], "the search term is in spans"


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
