from django.urls import path

from tenants import views

urlpatterns = [
    path("api-keys", views.ApiKeyCollectionView.as_view(), name="api-keys"),
    path("api-keys/<str:key_id>", views.ApiKeyDetailView.as_view(), name="api-key"),
]
