from django.contrib import admin
from django.urls import path

from config.api import api_urls
from core import views

urlpatterns = [
    path("", views.landing, name="landing"),
    # Answered by core.middleware.HealthProbeMiddleware first; listed here for reverse().
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/", api_urls()),
]

handler400 = "core.views.bad_request"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
