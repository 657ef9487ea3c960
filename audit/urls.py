from django.urls import path

from audit import views

urlpatterns = [path("audit", views.AuditCollectionView.as_view(), name="audit")]
