"""The project's one NinjaAPI: routers, JSON in and out, and errors as JSON with a clear message."""

import functools

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, HttpResponseNotAllowed
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import BaseRenderer

from accounts.api import BearerToken, auth_router, me_router
from notes.api import router as notes_router


class OrjsonParser(Parser):
    def parse_body(self, request):
        return orjson.loads(request.body)


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request, data, *, response_status):
        return orjson.dumps(data)


api = NinjaAPI(
    title="keepnotes API",
    version="1",
    urls_namespace="api",
    auth=BearerToken(),
    parser=OrjsonParser(),
    renderer=OrjsonRenderer(),
)
api.add_router("/v1/auth", auth_router)
api.add_router("/v1", me_router)
api.add_router("/v1/notes", notes_router)


def _error(request, status: int, detail: str, errors: list | None = None):
    body = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


def _field_name(error: dict) -> str:
    # ("body", "payload", "title") -> "title"; ("query", "limit") -> "limit"; only the leading
    # source is dropped, so a field that is itself called "body" keeps its name.
    loc = [str(part) for part in error.get("loc", ())]
    if loc[:1] == ["body"]:
        loc = loc[2:] if loc[1:2] == ["payload"] else loc[1:]
    elif loc[:1] in (["query"], ["path"], ["header"], ["cookie"]):
        loc = loc[1:]
    return ".".join(loc) or "request"


def _json_method_not_allowed(view):
    """ninja answers a method that a path lacks in plain text; make it JSON like every error."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = ", ".join(sorted(response["Allow"].split(", ")))  # ninja's is a set
            response = _error(request, 405, f"Method {request.method} not allowed; use {allowed}.")
            response["Allow"] = allowed
        return response

    return wrapper


def api_urls():
    """The API's URL patterns for `include`: `api.urls`, with a 405 in JSON too."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        pattern.callback = _json_method_not_allowed(pattern.callback)
    return patterns, app_name, namespace


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    errors = [
        {
            "field": _field_name(error),
            "message": error.get("msg", "invalid"),
            "type": error.get("type"),
        }
        for error in exc.errors
    ]
    summary = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    return _error(request, 422, f"Invalid input: {summary}", errors)


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    detail = str(exc)
    if isinstance(exc.__cause__, orjson.JSONDecodeError):
        detail = f"Request body is not valid JSON: {exc.__cause__}"
    return _error(request, exc.status_code, detail)


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return _error(request, 404, "Not found.")


@api.exception_handler(RequestDataTooBig)
def on_too_big(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _error(request, 413, f"Request body is larger than the {limit}-byte limit.")


@api.exception_handler(DataError)
def on_data_error(request, exc):
    # Values PostgreSQL refuses (out of range, bad encoding) are the client's input.
    return _error(request, 400, "A value is out of range or not storable.")


@api.exception_handler(DatabaseError)
def on_database_error(request, exc):
    if isinstance(exc, OperationalError | InterfaceError):
        response = _error(request, 503, "The database is unavailable; try again shortly.")
        response["Retry-After"] = "5"
        return response
    raise exc
