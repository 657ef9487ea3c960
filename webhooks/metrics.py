"""The deliverer's Prometheus series (served by `runwebhooks --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERY_ATTEMPTS = Counter(
    "orchestrator_webhook_deliveries_total",
    "Delivery attempts, by outcome (succeeded, gone, http_error, timeout, network_error, refused)",
    ["outcome"],
)
DELIVERIES_FAILED = Counter(
    "orchestrator_webhook_deliveries_failed_total", "Deliveries given up: retries spent, or the receiver gone"
)
ATTEMPT_SECONDS = Histogram(
    "orchestrator_webhook_attempt_seconds",
    "One delivery attempt's HTTP exchange",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERY_LAG_SECONDS = Histogram(
    "orchestrator_webhook_delivery_lag_seconds",
    "From the run change (its journal entry) to the delivery's success",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
BACKLOG = Gauge("orchestrator_webhook_backlog", "Pending deliveries due now", multiprocess_mode="mostrecent")
OLDEST_PENDING_SECONDS = Gauge(
    "orchestrator_webhook_oldest_pending_seconds",
    "Age of the oldest pending delivery",
    multiprocess_mode="mostrecent",
)
IN_FLIGHT = Gauge("orchestrator_webhook_in_flight", "Attempts in flight now", multiprocess_mode="livesum")
