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
