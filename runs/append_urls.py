"""The checkpoint appends' route, included second in the root URLconf: workers
append every checkpoint there, the busiest request of all, and each pattern
tried before the one that matches costs a match attempt and a place in the
match's list of tried patterns."""

from django.urls import path

from runs.api.append import checkpoints_view

urlpatterns = [
    path("runs/<str:run_id>/checkpoints", checkpoints_view(), name="run-checkpoints"),
]
