from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runs import dashboard_panels
        from schedules import dashboard

        dashboard_panels.register("schedules", dashboard.due_next)
