"""`/admin/runs/dashboard/`: the fleet, the queue and the last day at a glance.

Server-rendered, charts included (inline SVG), so it needs nothing from
another origin. Its script re-fetches the page's own `?fragment=1` every few
seconds and swaps it in: the page updates itself without a reload.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from runs import dashboard, states

REFRESH_SECONDS = 5


@permission_required("runs.view_run", raise_exception=True)
def dashboard_view(request: HttpRequest) -> HttpResponse:
    board = dashboard.read()
    series = board.series
    assert series is not None
    context = {
        **admin.site.each_context(request),
        "title": "Runs dashboard",
        "board": board,
        "statuses": [(status, board.by_status.get(status, 0)) for status in states.STATUSES],
        "modes": [
            (mode, [f"{status} {counts[status]}" for status in states.STATUSES if counts.get(status)])
            for mode, counts in board.by_mode_status.items()
            if any(counts.values())
        ],
        "charts": [
            dashboard.bar_chart("Finished runs per minute", series.finished, series.start),
            dashboard.bar_chart("Failures per minute", series.failed, series.start, css="dash-chart-failed"),
        ],
        "refresh_seconds": REFRESH_SECONDS,
    }
    template = (
        "admin/runs/dashboard_fragment.html" if request.GET.get("fragment") else "admin/runs/dashboard.html"
    )
    return TemplateResponse(request, template, context)
