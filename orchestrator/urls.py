from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

from orchestrator import health, prometheus
from runs.admin_dashboard import dashboard_view
from runs.stream.views import run_events

urlpatterns = [
    # First: a request keeps its URL match, with every pattern tried before
    # it, for as long as it lasts, and thousands of event streams last hours.
    path("runs/<str:run_id>/events", run_events, name="run-events"),
    # Second: the checkpoint appends, the busiest request of all (see the module).
    path("", include("runs.append_urls")),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", prometheus.metrics, name="metrics"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    # Before the admin's own URLs, which would read "dashboard" as a model name.
    path("admin/runs/dashboard/", admin.site.admin_view(dashboard_view), name="runs-dashboard"),
    path("admin/", admin.site.urls),
    path("", include("runs.urls")),
    path("", include("webhooks.urls")),
    path("", include("schedules.urls")),
    path("", include("tenants.urls")),
    path("", include("audit.urls")),
]

handler400 = "orchestrator.errors.handler400"
handler403 = "orchestrator.errors.handler403"
handler404 = "orchestrator.errors.handler404"
handler500 = "orchestrator.errors.handler500"
