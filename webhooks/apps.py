from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runs import dashboard_panels
        from webhooks import (
            checks,  # noqa: F401  (registers the settings check)
            dashboard,
        )

        dashboard_panels.register("webhooks", dashboard.backlog)
