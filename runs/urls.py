from django.urls import path

from runs.api import views
from runs.api.append import checkpoints_view
from runs.stream.views import run_events

urlpatterns = [
    path("runs", views.RunCollectionView.as_view(), name="runs"),
    path("runs/<str:run_id>", views.RunDetailView.as_view(), name="run"),
    path("runs/<str:run_id>/checkpoints", checkpoints_view(), name="run-checkpoints"),
    path("runs/<str:run_id>/stream-token", views.StreamTokenView.as_view(), name="run-stream-token"),
    path("runs/<str:run_id>/events", run_events, name="run-events"),
]
