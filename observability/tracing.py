"""OpenTelemetry traces, only when OTEL_EXPORTER_OTLP_ENDPOINT says where to send them.

Off, nothing of OpenTelemetry is imported (observability.apps decides). On, each request is a
span (the Django instrumentation) with its database queries inside (psycopg's), and carries
the request id, so that a trace and the log lines of one request find each other. The SDK
reads the standard OTEL_* variables itself (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...).

Two things the instrumentation does by default are narrowed here:
- a request's `traceparent` (and baggage) is believed only from a proxy in TRUSTED_PROXIES.
  From anyone else it would choose the trace id and, with the sampled flag, force the span to
  be exported whatever the sampler's ratio: any client could fill the collector.
- URLs in spans lose their query string (search terms), as in the access log, and statement
  parameters are left out, unless TRACING_CAPTURE_PARAMETERS.
"""

import os

from django.conf import settings

from core.client_address import is_trusted_proxy

REQUEST_ID_ATTRIBUTE = "keepnotes.request_id"
# Where the WSGI instrumentation puts the URL, by semantic-conventions version.
URL_ATTRIBUTES = ("http.target", "http.url", "url.full")


def start() -> None:
    """Install the tracer provider and the instrumentation; before the WSGI handler loads."""
    from opentelemetry import propagate, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "keepnotes")})
    provider = TracerProvider(resource=resource)
    # The batch processor's thread is started again in each forked worker (the SDK's fork hook).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(_from_trusted_proxies(propagate.get_global_textmap()))
    capture = settings.TRACING_CAPTURE_PARAMETERS
    DjangoInstrumentor().instrument(
        request_hook=None if capture else _drop_query_string, response_hook=_link_request_id
    )
    PsycopgInstrumentor().instrument(enable_commenter=False, capture_parameters=capture)


def _from_trusted_proxies(propagator):
    """`propagator`, extracting a caller's context only from a request a trusted proxy sent."""
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator, default_getter

    class FromTrustedProxies(TextMapPropagator):
        def extract(self, carrier, context=None, getter=default_getter):
            # The carrier is the WSGI environ (request.META): REMOTE_ADDR is the TCP peer.
            peer = carrier.get("REMOTE_ADDR", "") if hasattr(carrier, "get") else ""
            if not is_trusted_proxy(peer):
                return context if context is not None else Context()
            return propagator.extract(carrier, context, getter)

        def inject(self, *args, **kwargs):
            propagator.inject(*args, **kwargs)

        @property
        def fields(self):
            return propagator.fields

    return FromTrustedProxies()


def _drop_query_string(span, request) -> None:
    if not span.is_recording():
        return
    for key in URL_ATTRIBUTES:
        value = span.attributes.get(key)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.partition("?")[0])
    if "url.query" in span.attributes:
        span.set_attribute("url.query", "")


def _link_request_id(span, request, response) -> None:
    request_id = getattr(request, "request_id", None)
    if request_id and span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
