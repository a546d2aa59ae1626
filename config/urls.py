from django.contrib import admin
from django.urls import path

from config.api import api
from ops import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
]

handler404 = "ops.views.not_found"
handler500 = "ops.views.server_error"
