"""The project's one NinjaAPI: routers, JSON in and out, and errors as JSON with a clear message."""

import functools
from urllib.parse import unquote_to_bytes

import orjson
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, HttpResponseNotAllowed
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import BaseRenderer

from accounts.api import BearerToken, auth_router, me_router
from accounts.throttle import LoginThrottled
from core.api_docs import api_docs_visible
from core.fields import PATTERN_MESSAGES
from core.pagination import InvalidCursor
from core.schemas import ErrorOut
from filestore.errors import FileTooLarge, StorageFull
from notes.api import routes as notes_router
from tasks.fair import OwnerLimitReached


class UnsupportedMediaType(ValueError):
    pass


class OrjsonParser(Parser):
    def parse_body(self, request):
        content_type = request.content_type or "none"
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json (got {content_type})."
            )
        return orjson.loads(request.body)

    def parse_querydict(self, data, list_fields, request):
        _refuse_invalid_utf8_query(request)
        return super().parse_querydict(data, list_fields, request)


def _refuse_invalid_utf8_query(request) -> None:
    """Django decodes a query string leniently (bad bytes become U+FFFD); the API refuses them."""
    raw = request.META.get("QUERY_STRING", "").encode("iso-8859-1", "replace")  # PEP 3333
    errors = []
    for pair in raw.split(b"&"):
        name, _, value = (
            unquote_to_bytes(part.replace(b"+", b" ")) for part in pair.partition(b"=")
        )
        try:
            name.decode(), value.decode()
        except UnicodeDecodeError:
            field = name.decode(errors="replace")
            errors.append(
                {"loc": ("query", field), "msg": "is not valid UTF-8", "type": "unicode_error"}
            )
    if errors:
        raise ValidationError(errors)


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request, data, *, response_status):
        return orjson.dumps(data)


class KeepnotesAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        _document_errors(schema)
        return schema


# The errors any operation can answer, by what the operation takes (see the handlers below).
ERRORS_OF_EVERY_OPERATION = {
    "400": "The request cannot be used: a value PostgreSQL cannot store, a forged cursor, ...",
    "503": "The database is unavailable; retry after `Retry-After` seconds.",
}
ERRORS_OF_AUTHENTICATED = {"401": "No bearer token, or one that is unknown, expired or revoked."}
ERRORS_OF_PATH_PARAMETERS = {"404": "Not found (another user's object included)."}
ERRORS_OF_INPUT = {"422": "Invalid input; `errors` names each field at fault."}
ERRORS_OF_BODY = {
    "400": "The body is not valid JSON.",
    "413": "The body is larger than MAX_REQUEST_BYTES.",
    "411": "The body was sent chunked, without Content-Length.",
    "415": "The body is not `application/json`.",
}


def _document_errors(schema: dict) -> None:
    """Declare every error status an operation can answer, each an ErrorOut."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components.setdefault("ErrorOut", error_schema)
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for operations in schema["paths"].values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            errors = dict(ERRORS_OF_EVERY_OPERATION)
            if operation.get("security"):
                errors |= ERRORS_OF_AUTHENTICATED
            if any(parameter["in"] == "path" for parameter in parameters):
                errors |= ERRORS_OF_PATH_PARAMETERS
            if parameters or "requestBody" in operation:
                errors |= ERRORS_OF_INPUT
            if "requestBody" in operation:
                errors |= ERRORS_OF_BODY
            # ninja keys the statuses an operation declares by int: as text, one key per status,
            # and what an operation says of its own errors wins over the common words.
            responses = {str(status): answer for status, answer in operation["responses"].items()}
            operation["responses"] = responses
            for status, description in errors.items():
                responses.setdefault(status, {"description": description})
                responses[status].setdefault("content", body)


def _docs_access(view):
    """Who may read /api/docs and /api/openapi.json, by API_DOCS (config/settings.py).

    public: anyone. staff: a signed-in admin session of a staff user (anyone else is sent to the
    admin's login). off: 404, as for a path that does not exist. Decided per request, from the
    setting, so that a test can switch it without rebuilding the URL patterns.
    """
    for_staff = staff_member_required(view)

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if settings.API_DOCS == "off":
            raise Http404
        if api_docs_visible(request):
            return view(request, *args, **kwargs)
        return for_staff(request, *args, **kwargs)  # to the admin's login

    return wrapper


api = KeepnotesAPI(
    title="keepnotes API",
    version="1",
    urls_namespace="api",
    docs_decorator=_docs_access,
    auth=BearerToken(),
    parser=OrjsonParser(),
    renderer=OrjsonRenderer(),
)
api.add_router("/v1/auth", auth_router)
api.add_router("/v1", me_router)
api.add_router("/v1", notes_router)  # /v1/notes, /v1/imports


def _error(request, status: int, detail: str, errors: list | None = None):
    body: dict[str, object] = {"detail": detail}
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


def _message(error: dict) -> str:
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_MESSAGES:
            return PATTERN_MESSAGES[pattern]
    return error.get("msg", "invalid")


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    errors = [
        {"field": _field_name(error), "message": _message(error), "type": error.get("type")}
        for error in exc.errors
    ]
    summary = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    return _error(request, 422, f"Invalid input: {summary}", errors)


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    detail = str(exc)
    if isinstance(exc.__cause__, UnsupportedMediaType):
        return _error(request, 415, str(exc.__cause__))
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


@api.exception_handler(FileTooLarge)
def on_file_too_large(request, exc: FileTooLarge):
    return _error(request, 413, f"{exc} Nothing was stored.")


@api.exception_handler(StorageFull)
def on_storage_full(request, exc: StorageFull):
    # Nothing of the file was kept; uploads resume once space is freed, with no restart.
    response = _error(request, 507, str(exc))
    response["Retry-After"] = "30"
    return response


@api.exception_handler(SuspiciousOperation)
def on_suspicious_request(request, exc):
    # Django's own refusals of a request; their messages may name settings, so not shown.
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return _error(request, 400, f"Too many parameters: at most {limit} are accepted.")
    return _error(request, 400, "Bad request.")


@api.exception_handler(InvalidCursor)
def on_invalid_cursor(request, exc: InvalidCursor):
    return _error(request, 400, f"cursor: {exc}")


@api.exception_handler(LoginThrottled)
def on_login_throttled(request, exc: LoginThrottled):
    response = _error(request, 429, str(exc))
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(OwnerLimitReached)
def on_owner_limit_reached(request, exc: OwnerLimitReached):
    response = _error(request, 429, str(exc))
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(DataError)
def on_data_error(request, exc):
    # Values PostgreSQL refuses (out of range, bad encoding) are the client's input.
    return _error(request, 400, "A value is out of range or not storable.")


@api.exception_handler(DatabaseError)
def on_database_error(request, exc):
    # Class 54 (program_limit_exceeded: too long, too large, too complex) is the request itself:
    # psycopg files it under OperationalError, but retrying the same request cannot help.
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
    if sqlstate.startswith("54"):
        return _error(request, 400, "The request exceeds a limit of the database; make it smaller.")
    if sqlstate == "53100" or "No space left on device" in str(exc):  # disk_full, or an I/O error
        # Nothing was written; reads still work. Writes resume once space is freed, no restart.
        response = _error(request, 503, "The server is out of disk space; try again later.")
        response["Retry-After"] = "30"
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        response = _error(request, 503, "The database is unavailable; try again shortly.")
        response["Retry-After"] = "5"
        return response
    raise exc
