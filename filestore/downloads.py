"""The answer to a download of a stored file, once the caller's view has authorised it.

Three ways, by where the file is and what is in front of the app:
- behind the front door (`serve`'s nginx): an empty answer with `X-Accel-Redirect`, and nginx
  sends the file from its internal location (sendfile, Range, If-Range), with the ETag and the
  safety headers it sets there (server/templates/server/nginx.conf): the app holds no thread
  while the bytes go out;
- on S3 (FILES_URL): streamed from the bucket through the app, a chunk at a time, the Range asked
  passed on to the bucket, with the same headers as from the disk. Not a redirect to a signed
  URL: such an answer cannot carry `Content-Security-Policy` or `nosniff` (only the
  `response-*` headers a presigned GET may override), and SeaweedFS, the S3 the tests run,
  refuses those overrides' signatures. Behind the front door the app's thread is held only until
  nginx has buffered the answer, not for as long as a slow client reads;
- otherwise (WEB_FRONT=none, runserver): the app streams the file in chunks (FileResponse).

Every answer is an attachment, never shown inline, and one a browser will not run even if
opened: `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox` (an opaque
origin: no script, no cookies, no storage of the site's). Its ETag is the file's sha256.
"""

import json
import re
import unicodedata
from collections.abc import Iterator

from botocore.exceptions import ClientError
from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header

from .selectors import file_local_path
from .services import file_open
from .storage import ProtectedS3Storage, protected_storage

# Set by the front door on every request it passes to the app (nginx_proxy_headers.conf), to
# where its internal location serves the store; a client cannot set it through the front.
FRONT_LOCATION_HEADER = "HTTP_X_PROTECTED_FILES_LOCATION"
CHUNK_BYTES = 1 << 20
RANGE_NOT_SATISFIABLE = "The range asked for is outside the file; its size is in Content-Range."
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
    request: HttpRequest, *, name: str, sha256: str, size: int, filename: str, content_type: str
) -> HttpResponseBase:
    """Send the stored file `name` as an attachment called `filename`."""
    headers = download_headers(filename=filename)
    etag = f'"{sha256}"'
    answered = get_conditional_response(request, etag=etag)  # a 304 for If-None-Match
    if answered is not None:
        _set(answered, {"ETag": etag, **SAFE_HEADERS})
        return answered
    storage = protected_storage()
    if file_local_path(name) is None and isinstance(storage, ProtectedS3Storage):
        return _from_bucket(request, storage, name, etag, size, content_type, headers)
    front = request.META.get(FRONT_LOCATION_HEADER)
    if front and settings.WEB_FRONT == "nginx":
        # nginx keeps Content-Type, Content-Disposition and Cache-Control from this answer,
        # and sets the rest itself in its internal location.
        sent_by_front = HttpResponse(content_type=content_type, headers=headers)
        sent_by_front["X-Accel-Redirect"] = front.rstrip("/") + "/" + name
        return sent_by_front
    answer = FileResponse(
        file_open(name),
        as_attachment=True,
        filename=served_name(filename),
        content_type=content_type,
    )
    _set(answer, {**SAFE_HEADERS, "ETag": etag})
    return answer


def _from_bucket(
    request: HttpRequest,
    storage: ProtectedS3Storage,
    name: str,
    etag: str,
    size: int,
    content_type: str,
    headers: dict[str, str],
) -> HttpResponseBase:
    # The object's key, FILES_URL's prefix included, as django-storages makes it.
    asked = {"Bucket": storage.bucket_name, "Key": storage._normalize_name(name)}
    wanted = request.headers.get("Range")
    if wanted and request.headers.get("If-Range", etag) == etag:  # else: a changed file, whole
        asked["Range"] = wanted  # parsed by the bucket, which answers 206 or InvalidRange
    try:
        got = storage.connection.meta.client.get_object(**asked)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "InvalidRange":
            raise
        refused = HttpResponse(
            json.dumps({"detail": RANGE_NOT_SATISFIABLE}),
            status=416,
            content_type="application/json",
            headers=SAFE_HEADERS,
        )
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    answer = StreamingHttpResponse(
        _chunks(got["Body"]),
        status=206 if got.get("ContentRange") else 200,
        content_type=content_type,
        headers={**headers, "ETag": etag, "Accept-Ranges": "bytes"},
    )
    answer["Content-Length"] = str(got["ContentLength"])
    if got.get("ContentRange"):
        answer["Content-Range"] = got["ContentRange"]
    return answer


def _chunks(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


def _set(answer: HttpResponseBase, headers: dict[str, str]) -> None:
    for header, value in headers.items():
        answer[header] = value
