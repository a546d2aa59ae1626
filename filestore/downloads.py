"""The answer to a download of a stored file, once the caller's view has authorised it.

Three ways, by where the file is and what is in front of the app:
- behind the front door (`serve`'s nginx): an empty answer with `X-Accel-Redirect`, and nginx
  sends the file from its internal location (sendfile, Range, If-Range), with the ETag and the
  safety headers it sets there (server/templates/server/nginx.conf): the app holds no thread
  while the bytes go out;
- on S3 (FILES_URL): a redirect to a URL signed for SIGNED_URL_SECONDS, whose answer carries the
  same Content-Type and Content-Disposition (the response-* parameters of a presigned GET). The
  bytes come from the bucket's own origin, never the site's, and S3 serves Range itself;
- otherwise (WEB_FRONT=none, runserver): the app streams the file in chunks (FileResponse).

Every answer is an attachment, never shown inline, and one a browser will not run even if
opened: `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox` (an opaque
origin: no script, no cookies, no storage of the site's). Its ETag is the file's sha256.
"""

import re
import unicodedata

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header

from .selectors import file_local_path
from .services import file_open
from .storage import protected_storage

# Set by the front door on every request it passes to the app (nginx_proxy_headers.conf), to
# where its internal location serves the store; a client cannot set it through the front.
FRONT_LOCATION_HEADER = "HTTP_X_PROTECTED_FILES_LOCATION"
# Long enough for the redirect to be followed, short enough that a leaked URL is soon useless.
SIGNED_URL_SECONDS = 60
# Filesystems take names of 255 bytes; and the header must fit the front's buffer for the app's
# answer head (a page, 4 KiB), which 255 bytes do even percent-encoded.
SERVED_NAME_MAX_BYTES = 255
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    # The owner's only: no shared cache keeps it, and a browser asks again (a 304 by ETag).
    "Cache-Control": "private, no-cache",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


def served_name(name: str) -> str:
    """`name` as offered to save: no path separators or control characters, at most
    SERVED_NAME_MAX_BYTES of UTF-8, its extension kept."""
    safe = _UNSAFE.sub("_", unicodedata.normalize("NFC", name)).strip().lstrip(".") or "download"
    if len(safe.encode()) <= SERVED_NAME_MAX_BYTES:
        return safe
    stem, dot, extension = safe.rpartition(".")
    if not dot or not stem or len(extension.encode()) > 16:
        stem, extension = safe, ""
    suffix = f".{extension}" if extension else ""
    budget = SERVED_NAME_MAX_BYTES - len(suffix.encode())
    return stem.encode()[:budget].decode(errors="ignore") + suffix


def download_headers(*, filename: str) -> dict[str, str]:
    """What every download of a stored file carries, whoever sends its bytes."""
    return {
        **SAFE_HEADERS,
        "Content-Disposition": content_disposition_header(True, served_name(filename)),
    }


def download_response(
    request: HttpRequest, *, name: str, sha256: str, filename: str, content_type: str
) -> HttpResponse:
    """Send the stored file `name` as an attachment called `filename`."""
    headers = download_headers(filename=filename)
    etag = f'"{sha256}"'
    answered = get_conditional_response(request, etag=etag)  # a 304 for If-None-Match
    if answered is not None:
        _set(answered, {"ETag": etag, **SAFE_HEADERS})
        return answered
    path = file_local_path(name)
    if path is None:
        return _signed_redirect(name, headers, content_type)
    front = request.META.get(FRONT_LOCATION_HEADER)
    if front and settings.WEB_FRONT == "nginx":
        # nginx keeps Content-Type, Content-Disposition and Cache-Control from this answer,
        # and sets the rest itself in its internal location.
        answer = HttpResponse(content_type=content_type, headers=headers)
        answer["X-Accel-Redirect"] = front.rstrip("/") + "/" + name
        return answer
    answer = FileResponse(
        file_open(name),
        as_attachment=True,
        filename=served_name(filename),
        content_type=content_type,
    )
    _set(answer, {**SAFE_HEADERS, "ETag": etag})
    return answer


def _signed_redirect(name: str, headers: dict[str, str], content_type: str) -> HttpResponse:
    url = protected_storage().url(
        name,
        parameters={
            "ResponseContentType": content_type,
            "ResponseContentDisposition": headers["Content-Disposition"],
            "ResponseCacheControl": "private, no-store",
        },
        expire=SIGNED_URL_SECONDS,
    )
    answer = HttpResponseRedirect(url)
    _set(answer, {**SAFE_HEADERS, "Cache-Control": "no-store"})
    return answer


def _set(answer: HttpResponse, headers: dict[str, str]) -> None:
    for header, value in headers.items():
        answer[header] = value
