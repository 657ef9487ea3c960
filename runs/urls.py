from django.urls import path

from runs.api import views
from runs.stream.list_view import run_list_events

urlpatterns = [
    path("runs", views.RunCollectionView.as_view(), name="runs"),
    # Before runs/<run_id>, which would take "events" and "stream-token" for run ids.
    path("runs/events", run_list_events, name="run-list-events"),
    path("runs/stream-token", views.ListStreamTokenView.as_view(), name="run-list-stream-token"),
    path("runs/<str:run_id>", views.RunDetailView.as_view(), name="run"),
    path("runs/<str:run_id>/stream-token", views.StreamTokenView.as_view(), name="run-stream-token"),
]
