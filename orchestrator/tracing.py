"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

One trace per run: the API request that creates it, its dispatch (the
`traceparent` travels in the Redis queue entry, or in a Kubernetes Job's
environment as TRACEPARENT), the worker's attempt, and the attempt's
checkpoint and status writes. The official instrumentations do the request
(Django), SQL (psycopg) and Redis spans; this module adds the spans that name
what the orchestrator does, and carries the context across processes with the
W3C propagator.

The exporter is OTLP over HTTP/protobuf and reads the standard OTEL_*
variables itself (endpoint, headers, timeout, batch delay); OTEL_SERVICE_NAME
overrides the name each process gives itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

tracer = trace.get_tracer("orchestrator")

_configured = False


def enabled() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(service_name: str, *, exporter: SpanExporter | None = None) -> bool:
    """Install the tracer provider and the instrumentations, once per process.

    Does nothing (and returns False) when tracing is off and no exporter is
    given. Call it after django.setup() and before the ASGI handler loads its
    middleware: Django's instrumentation adds a middleware of its own."""
    global _configured
    if _configured:
        return True
    if exporter is None:
        if not enabled():
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    _configured = True
    return True


def shutdown() -> None:
    """Flush what is buffered (a process about to exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, maybe
    `tracestate`); empty when no span is recording."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


@contextmanager
def continued(headers: Mapping[str, str], name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span named `name` in the trace that `headers` carry (a new trace
    when they carry none), current for the block."""
    parent = propagate.extract(dict(headers))
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span(name, kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)


def span(name: str, **attributes: Any) -> Any:
    """A child span of the current one, as a context manager."""
    return tracer.start_as_current_span(name, attributes=attributes)
