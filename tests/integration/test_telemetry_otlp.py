"""Telemetry against real receivers: an OTLP gRPC trace collector and a Prometheus scrape over HTTP."""

import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures

import grpc
import prometheus_client
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from fraudshared.telemetry import extract_context, inject_headers, setup_telemetry, start_metrics_server

pytestmark = pytest.mark.integration


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every ExportTraceServiceRequest it receives."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(self, request, context):
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[dict[str, str], object]]:
        """(resource attributes, span) for every received span."""
        out = []
        with self._lock:
            for request in self.requests:
                for resource_spans in request.resource_spans:
                    attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        out.extend((attrs, span) for span in scope_spans.spans)
        return out


@pytest.fixture
def collector() -> Iterator[tuple[_Collector, int]]:
    servicer = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


def test_spans_reach_a_real_otlp_grpc_receiver(collector: tuple[_Collector, int]) -> None:
    receiver, port = collector
    provider = setup_telemetry("fraud-test-svc", f"http://127.0.0.1:{port}", set_global=False)
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("ScoreTransaction") as span:
        span.set_attribute("fraud.decision", "APPROVE")
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()

    received = receiver.spans()
    assert [(attrs["service.name"], span.name) for attrs, span in received] == [("fraud-test-svc", "ScoreTransaction")]


def test_trace_context_crosses_message_headers(collector: tuple[_Collector, int]) -> None:
    receiver, port = collector
    provider = setup_telemetry("fraud-test-svc", f"127.0.0.1:{port}", set_global=False)
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("publish") as producer:
        headers = inject_headers({"Nats-Msg-Id": "txn-1"})
    assert headers["Nats-Msg-Id"] == "txn-1"
    assert headers["traceparent"].startswith("00-")

    with tracer.start_as_current_span("consume", context=extract_context(headers)) as consumer:
        pass
    assert consumer.get_span_context().trace_id == producer.get_span_context().trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.get_span_context().span_id

    provider.force_flush(timeout_millis=10_000)
    provider.shutdown()
    assert sorted(span.name for _, span in receiver.spans()) == ["consume", "publish"]


def test_extract_without_headers_starts_a_new_trace() -> None:
    provider = setup_telemetry("fraud-test-svc", "", set_global=False)
    with provider.get_tracer("t").start_as_current_span("root", context=extract_context(None)) as span:
        assert span.parent is None


def test_prometheus_endpoint_serves_a_counter_over_http() -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter(
        "fraud_test_decisions", "Decisions made in the test.", ["decision"], registry=registry
    )
    counter.labels(decision="DECLINE").inc(3)

    port = start_metrics_server(0, registry=registry)

    assert port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert 'fraud_test_decisions_total{decision="DECLINE"} 3.0' in body
