"""OpenTelemetry traces, only when OTEL_EXPORTER_OTLP_ENDPOINT says where to send them.

Off, nothing of OpenTelemetry is imported (observability.apps decides). On, each request is a
span (the Django instrumentation) with its database queries inside (psycopg's), and carries
the request id, so that a trace and the log lines of one request find each other. The SDK
reads the standard OTEL_* variables itself (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...).
"""

import os

REQUEST_ID_ATTRIBUTE = "keepnotes.request_id"


def start() -> None:
    """Install the tracer provider and the instrumentation; before the WSGI handler loads."""
    from opentelemetry import trace
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
    DjangoInstrumentor().instrument(response_hook=_link_request_id)
    PsycopgInstrumentor().instrument(enable_commenter=False)


def _link_request_id(span, request, response) -> None:
    request_id = getattr(request, "request_id", None)
    if request_id and span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
