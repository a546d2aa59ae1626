from django.http import HttpRequest

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
