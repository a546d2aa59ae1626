import sys

from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import health
from .api_docs import api_docs_visible


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    database = health.database_description()
    if not health.shows_details(request):
        database = {"connected": database["connected"]}
    return render(
        request, "landing.html", {"database": database, "api_docs": api_docs_visible(request)}
    )


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers; says nothing about the database (a liveness probe)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database answers and its schema is current."""
    ready, checks = health.readiness()
    if not health.shows_details(request):
        checks = health.without_details(checks)
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    """JSON for every page: a client that is refused here is rarely a browser."""
    if isinstance(exception, DisallowedHost):
        detail = "The Host header names a host this server does not serve."
    else:
        detail = "The request is malformed."
    return JsonResponse({"detail": detail}, status=400)


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if isinstance(sys.exception(), OperationalError | InterfaceError):
        # The database is away (restarting, failing over): not a bug, and worth a retry. The API
        # says so itself (config/api.py); this covers the rest: the admin, sessions, middleware.
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse(
                {"detail": "The database is unavailable; try again shortly."}, status=503
            )
        else:
            response = render(request, "503.html", status=503)
        response["Retry-After"] = "5"
        return response
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return render(request, "500.html", status=500)
