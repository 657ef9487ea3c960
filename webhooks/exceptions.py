"""Errors of the webhooks API, in the project's one error shape."""

from __future__ import annotations

from runs.exceptions import OrchestratorError


class WebhookNotFound(OrchestratorError):
    status_code = 404
    code = "webhook_not_found"

    def __init__(self) -> None:
        super().__init__("webhook not found")


class DeliveryNotFound(OrchestratorError):
    status_code = 404
    code = "delivery_not_found"

    def __init__(self) -> None:
        super().__init__("delivery not found")
