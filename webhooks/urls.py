from django.urls import path

from webhooks import views

urlpatterns = [
    path("webhooks", views.WebhookCollectionView.as_view(), name="webhooks"),
    path("webhooks/<str:webhook_id>", views.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<str:webhook_id>/rotate-secret",
        views.RotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "webhooks/<str:webhook_id>/deliveries",
        views.DeliveryCollectionView.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/redeliver",
        views.RedeliverView.as_view(),
        name="webhook-redeliver",
    ),
]
