"""The request id and the request metrics, outermost in settings.MIDDLEWARE."""

import re
import time
from contextlib import ExitStack

from django.conf import settings
from django.db import connections
from django.http import HttpRequest

from core.middleware import PROBES

from . import request_id

# `api/v1/notes/<int:note_id>` (Django's route) -> `/api/v1/notes/{note_id}` (the API's own).
_CONVERTER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")
UNMATCHED = "unmatched"  # every path no URL pattern knows: one label, whatever was asked
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}  # any other: "other"


class RequestIdMiddleware:
    """Give each request its id (observability.request_id) and send it back in X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        identifier = request_id.request_id_for(request)
        # For the code that reads it from the request (tracing), which Django's stubs do not know.
        request.request_id = identifier  # type: ignore[attr-defined]
        # Kept past this middleware: Django logs a 4xx or 5xx after every middleware has
        # returned. Cleared when the response is closed (request_finished, observability.apps).
        request_id.current.set(identifier)
        response = self.get_response(request)
        response[request_id.HEADER] = identifier
        return response


def route_template(request: HttpRequest) -> str:
    """The URL pattern that answered, never the raw path (one label per note id: unbounded)."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route is not None:
        return "/" + _CONVERTER.sub(r"{\1}", match.route)
    if request.path_info in PROBES:  # answered before URL resolution (core.middleware)
        return request.path_info
    if request.path_info.startswith(f"/{settings.STATIC_URL.strip('/')}/"):
        return f"/{settings.STATIC_URL.strip('/')}/{{path}}"  # whitenoise, also before resolution
    return UNMATCHED


class _QueryTimer:
    """A connection.execute_wrapper: counts this request's queries and the time they took."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started


class MetricsMiddleware:
    """Count and time each request by route template, method and status; and its queries."""

    def __init__(self, get_response):
        from . import metrics  # here, not at import: see observability.metrics

        self.get_response = get_response
        self.metrics = metrics

    def __call__(self, request: HttpRequest):
        queries = _QueryTimer()
        started = time.perf_counter()
        with ExitStack() as stack:
            for connection in connections.all():
                stack.enter_context(connection.execute_wrapper(queries))
            response = self.get_response(request)
        elapsed = time.perf_counter() - started
        route, status = route_template(request), str(response.status_code)
        method = request.method if request.method in METHODS else "other"
        metrics = self.metrics
        metrics.REQUESTS.labels(route, method, status).inc()
        metrics.REQUEST_DURATION.labels(route, method, status).observe(elapsed)
        metrics.DB_QUERIES_PER_REQUEST.observe(queries.count)
        if queries.count:
            metrics.DB_QUERIES.labels(route, method).inc(queries.count)
            metrics.DB_QUERY_SECONDS.labels(route, method).inc(queries.seconds)
        return response
