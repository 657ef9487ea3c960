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
    path("", include("schedules.urls")),
]

handler400 = "orchestrator.errors.handler400"
handler403 = "orchestrator.errors.handler403"
handler404 = "orchestrator.errors.handler404"
handler500 = "orchestrator.errors.handler500"
