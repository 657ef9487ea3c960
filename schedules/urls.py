from django.urls import path

from schedules import api

urlpatterns = [
    path("schedules", api.ScheduleCollectionView.as_view(), name="schedules"),
    path("schedules/preview", api.SchedulePreviewView.as_view(), name="schedule-preview"),
    path("schedules/<str:schedule_id>", api.ScheduleDetailView.as_view(), name="schedule"),
    path("schedules/<str:schedule_id>/trigger", api.ScheduleTriggerView.as_view(), name="schedule-trigger"),
]
