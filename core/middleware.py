from django.conf import settings
from django.http import HttpRequest, JsonResponse

from . import views

PROBES = {"/healthz": views.healthz, "/readyz": views.readyz}


class HealthProbeMiddleware:
    """Answer /healthz and /readyz before host validation and the HTTPS redirect.

    Probes come from a load balancer, Docker or Kubernetes: they use the pod's IP as host name
    and plain HTTP, and must not be refused for either.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)


class LengthRequiredMiddleware:
    """Refuse a body sent without Content-Length (chunked) with 411, rather than read it as empty.

    WSGI gives the application CONTENT_LENGTH bytes of the body and Django reads no more, so a
    chunked body (gunicorn and granian both pass it on without a length) would look empty and
    fail as a confusing "field required". Clients that know their body send its length. It comes
    after the middleware that add security headers, so that the 411 carries them too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if "HTTP_TRANSFER_ENCODING" in request.META and not request.META.get("CONTENT_LENGTH"):
            detail = "Length Required: send the body with a Content-Length header, not chunked."
            return JsonResponse({"detail": detail}, status=411)
        return self.get_response(request)


class UrlLengthLimitMiddleware:
    """Refuse a URL longer than MAX_URL_BYTES with a JSON 414, like every other error.

    The HTTP server's own request-line limit would answer first with its HTML 414, so
    server/wsgi_servers.py lifts it and the limit is kept here. The length is the URL as sent,
    percent-encoded: path and query string.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        length = len(request.get_full_path())
        if length > settings.MAX_URL_BYTES:
            detail = (
                f"URI Too Long: the URL is {length} bytes, over the limit of "
                f"{settings.MAX_URL_BYTES}; send long input in a POST body."
            )
            return JsonResponse({"detail": detail}, status=414)
        return self.get_response(request)
