from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

from orchestrator import health, prometheus

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", prometheus.metrics, name="metrics"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("admin/", admin.site.urls),
    path("", include("runs.urls")),
    path("", include("webhooks.urls")),
]

handler400 = "runs.api.errors.handler400"
handler403 = "runs.api.errors.handler403"
handler404 = "runs.api.errors.handler404"
handler500 = "runs.api.errors.handler500"
