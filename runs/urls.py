from django.urls import path

from runs.api import views

urlpatterns = [
    path("runs", views.RunCollectionView.as_view(), name="runs"),
    path("runs/<str:run_id>", views.RunDetailView.as_view(), name="run"),
    path("runs/<str:run_id>/checkpoints", views.CheckpointCollectionView.as_view(), name="run-checkpoints"),
    path("runs/<str:run_id>/stream-token", views.StreamTokenView.as_view(), name="run-stream-token"),
]
