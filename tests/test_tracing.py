"""Tracing: one connected trace per run, from the client's request through the
API server, the dispatch into Redis, the worker's attempt and its writes.

The server and the worker are real processes exporting over OTLP/HTTP to a
receiver this test runs; the test's own client span goes to an in-memory
exporter, and the trace context it sends is where the run's trace starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry import propagate
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator import tracing
from runs.redis import queue as run_queue
from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix
from tests.servers import running_server

pytestmark = pytest.mark.django_db(transaction=True)


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


class Collector:
    """An OTLP/HTTP trace receiver on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self.changed = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.receive(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, request: ExportTraceServiceRequest) -> None:
        with self.changed:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ExportedSpan(
                                service=resource.get("service.name", ""),
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                attributes={a.key: _value(a.value) for a in span.attributes},
                            )
                        )
            self.changed.notify_all()

    def wait_for(self, name: str, run_id: str, timeout: float = 30.0) -> ExportedSpan:
        def found() -> ExportedSpan | None:
            return next(
                (s for s in self.spans if s.name == name and s.attributes.get("run.id") == run_id), None
            )

        with self.changed:
            self.changed.wait_for(found, timeout=timeout)
            span = found()
        assert span is not None, f"no {name} span for run {run_id}; got {[s.name for s in self.spans]}"
        return span

    def __enter__(self) -> Collector:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as started:
        yield started


@pytest.fixture
def traced(collector, tmp_path):
    """A server and a worker, both exporting to `collector`, on a queue of their own."""
    prefix = unique_prefix()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with running_server(tmp_path, REDIS_KEY_PREFIX=prefix, **env) as server:
        worker = WorkerProcess(tmp_path, prefix, concurrency=1, **env).start()
        try:
            yield server
        finally:
            worker.terminate()
            worker.stop()
            drop_keys(prefix)


def test_a_run_is_one_trace_from_the_request_to_the_workers_last_write(traced, collector):
    client_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(client_spans))
    with provider.get_tracer("test-client").start_as_current_span("create run"):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        response = httpx.post(
            f"{traced.url}/runs?mode=redis",
            json={"spec": {"task": "sleep", "input": {"seconds": 0, "checkpoints": 2}}},
            headers=headers,
        )
    assert response.status_code == 201, response.text
    run_id = response.json()["runId"]
    (client_span,) = client_spans.get_finished_spans()
    trace_id = format(client_span.context.trace_id, "032x")

    finish = collector.wait_for("run.finish", run_id)
    dispatch = collector.wait_for("run.dispatch", run_id)
    attempt = collector.wait_for("run.attempt", run_id)
    checkpoints = [
        s for s in collector.spans if s.name == "run.checkpoints" and s.attributes.get("run.id") == run_id
    ]
    by_id = {s.span_id: s for s in collector.spans}

    # The server's request span continues the client's trace...
    request = next(s for s in collector.spans if s.parent_id == format(client_span.context.span_id, "016x"))
    assert (request.service, request.trace_id) == ("orchestrator-api", trace_id)
    # ...the dispatch happens inside it...
    ancestor = by_id[dispatch.parent_id]
    while ancestor.span_id != request.span_id:
        ancestor = by_id[ancestor.parent_id]
    assert dispatch.service == "orchestrator-api"
    # ...and the worker's attempt continues from the dispatch, with its writes beneath.
    assert (attempt.service, attempt.trace_id, attempt.parent_id) == (
        "orchestrator-worker",
        trace_id,
        dispatch.span_id,
    )
    # The worker coalesces writes: however they were grouped, the two checkpoints went out.
    assert sum(int(s.attributes["checkpoints.count"]) for s in checkpoints) == 2
    assert {(s.trace_id, s.parent_id) for s in [*checkpoints, finish]} == {(trace_id, attempt.span_id)}
    assert finish.attributes["run.status"] == "completed"
    # The SQL and Redis calls are spans too, from the official instrumentations.
    assert any(
        s.parent_id in {c.span_id for c in checkpoints} and s.service == "orchestrator-worker"
        for s in collector.spans
    )


def test_without_an_endpoint_nothing_is_set_up_and_no_trace_context_travels(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

    assert tracing.configure("orchestrator-test") is False
    assert tracing.carrier() == {}
    assert "traceparent" not in run_queue.entry_fields(_a_run())


def _a_run():
    from runs import services

    return services.create_run(mode="redis", spec=None)[0]  # no spec: never queued


def test_an_entry_built_ahead_of_its_dispatch_carries_the_dispatchs_trace_context(queue):
    import uuid

    from django.utils import timezone

    from runs.models import Run

    run = Run(id=uuid.uuid4(), mode="redis", spec={"task": "sleep"}, created_at=timezone.now(), priority=5)
    packed = run_queue.packed_fields(run_queue.entry_fields(run, traced=False))
    assert run_queue.traced_packed(packed) == packed  # no span: nothing to add

    with TracerProvider().get_tracer("test").start_as_current_span("dispatch") as span:
        sent = run_queue.traced_packed(packed)

    assert queue.enqueue_packed([(str(run.id), 5, sent)]) == 1
    ((_, fields),) = queue.redis.xrange(queue.keys.stream)
    ids = span.get_span_context()
    assert fields["traceparent"] == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"
    assert fields["runId"] == str(run.id) and fields["task"] == "sleep"
