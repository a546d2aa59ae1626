from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from bench.drf_peer.views import NoteViewSet

# cookiecutter-django's api_router.py uses SimpleRouter outside DEBUG.
router = SimpleRouter(trailing_slash=False)
router.register("notes", NoteViewSet, basename="note")


def healthz(request):
    """What the benchmark waits for before loading the peer."""
    return HttpResponse("ok")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("healthz", healthz),
]
