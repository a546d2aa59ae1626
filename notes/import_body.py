"""The body limit of POST /api/v1/imports: IMPORT_MAX_REQUEST_BYTES, not MAX_REQUEST_BYTES.

Django checks DATA_UPLOAD_MAX_MEMORY_SIZE (MAX_REQUEST_BYTES) once, when `request.body` is first
read, for every view alike. This middleware reads the body of that one endpoint first, under its
own limit, the way `HttpRequest.body` does (into `_body`, then `_stream` for any later read);
every other request is left to the global limit.
"""

import io

from django.conf import settings
from django.http import HttpRequest, JsonResponse

# Where config/api.py mounts the imports router.
IMPORTS_PATH = "/api/v1/imports"


class ImportBodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.method == "POST" and request.path_info.rstrip("/") == IMPORTS_PATH:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0  # Django refuses it as usual
            limit = settings.IMPORT_MAX_REQUEST_BYTES
            if length > limit:
                detail = (
                    f"An import body is at most {limit} bytes (IMPORT_MAX_REQUEST_BYTES); "
                    f"split it into several imports."
                )
                return JsonResponse({"detail": detail}, status=413)
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                request._body = request.read()
                request._stream = io.BytesIO(request._body)
        return self.get_response(request)
