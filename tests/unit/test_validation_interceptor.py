"""The shared gRPC server over a real loopback channel: validation, health, reflection, metrics, shutdown."""

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from fraud.common.v1.money_pb2 import Money
from fraudshared.grpc_server import GracefulShutdown, build_server, health_servicer, serve_until_signalled
from fraudshared.validation import STATUS_DETAILS_KEY

METHOD = "/test.Echo/Echo"


class _Echo:
    def __init__(self) -> None:
        self.calls = 0

    async def echo(self, request: Money, context: grpc.aio.ServicerContext) -> Money:
        self.calls += 1
        return request


def _spec(echo: _Echo):
    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo.echo, request_deserializer=Money.FromString, response_serializer=Money.SerializeToString
            )
        },
    )
    return (lambda servicer, server: server.add_generic_rpc_handlers((servicer,)), handler, "test.Echo")


@pytest.fixture
async def served() -> AsyncIterator[tuple[_Echo, grpc.aio.Channel, InMemorySpanExporter]]:
    echo, spans = _Echo(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    server, port = await build_server("test", [_spec(echo)], 0, tracer_provider=provider)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield echo, channel, spans
    await channel.close()
    await server.stop(None)


def _call(channel: grpc.aio.Channel):
    return channel.unary_unary(
        METHOD, request_serializer=Money.SerializeToString, response_deserializer=Money.FromString
    )


def _handled(code: str) -> float:
    labels = {"grpc_service": "test.Echo", "grpc_method": "Echo", "grpc_code": code}
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


async def test_invalid_request_is_rejected_naming_field_and_rule(served) -> None:
    echo, channel, spans = served
    before = _handled("INVALID_ARGUMENT")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel)(Money(amount_minor=-5, currency="EUR"))

    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details()
    assert re.search(r"amount_minor: [^;]+ \[int64\.[a-z_]+\]", details), details
    assert "-5" not in details  # field values are never echoed
    assert echo.calls == 0

    trailers = dict(err.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["amount_minor"]
    assert bad_request.field_violations[0].reason.startswith("int64.")

    assert _handled("INVALID_ARGUMENT") == before + 1
    assert [s.name for s in spans.get_finished_spans()][-1] == METHOD


async def test_every_violation_is_listed(served) -> None:
    _, channel, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel)(Money(amount_minor=-1, currency="XXX"))
    parts = err.value.details().split("; ")
    assert [p.split(":")[0] for p in parts] == ["amount_minor", "currency"]
    assert all(re.search(r"\[[a-z0-9_]+\.[a-z0-9_]+\]$", p) for p in parts), parts


async def test_valid_request_reaches_the_servicer(served) -> None:
    echo, channel, _ = served
    before = _handled("OK")

    reply = await _call(channel)(Money(amount_minor=1250, currency="EUR"))

    assert reply == Money(amount_minor=1250, currency="EUR")
    assert echo.calls == 1
    assert _handled("OK") == before + 1


async def test_health_reports_serving(served) -> None:
    _, channel, _ = served
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "test.Echo"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(served) -> None:
    _, channel, _ = served
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    reply = await call.read()
    names = {s.name for s in reply.list_services_response.service}
    assert {"test.Echo", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_graceful_shutdown_runs_once_and_cleans_up_in_order() -> None:
    server, _ = await build_server("test", [_spec(_Echo())], 0)
    await server.start()
    calls: list[str] = []

    async def drain_nats() -> None:
        calls.append("drain")

    shutdown = GracefulShutdown(server, [drain_nats, lambda: calls.append("flush")], grace_s=0.1)
    health = health_servicer(server)
    await asyncio.gather(shutdown(), shutdown())
    await shutdown()

    assert calls == ["drain", "flush"]
    assert health is not None
    reply = await health.Check(health_pb2.HealthCheckRequest(service="test.Echo"), None)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def _serving(stop: asyncio.Event | None = None):
    server, port = await build_server("test", [_spec(_Echo())], 0)
    await server.start()
    cleaned = asyncio.Event()
    task = asyncio.create_task(serve_until_signalled(server, [cleaned.set], grace_s=0.1, stop_event=stop))
    return port, cleaned, task


async def _assert_stopped(port: int, cleaned: asyncio.Event, task: asyncio.Task) -> None:
    await asyncio.wait_for(task, timeout=5)
    assert cleaned.is_set()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await _call(channel)(Money(amount_minor=1, currency="EUR"), timeout=0.5)


async def test_serve_until_signalled_stops_on_its_event() -> None:
    before = signal.getsignal(signal.SIGTERM)  # other in-process services (e2e fixtures) may hold it
    stop = asyncio.Event()
    port, cleaned, task = await _serving(stop)
    await asyncio.sleep(0.05)
    stop.set()
    await _assert_stopped(port, cleaned, task)
    assert signal.getsignal(signal.SIGTERM) == before  # our handler removed again


async def test_one_sigterm_stops_every_service_in_the_process() -> None:
    first, second = await _serving(), await _serving()
    await asyncio.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # our handler is installed

    os.kill(os.getpid(), signal.SIGTERM)

    await _assert_stopped(*first)
    await _assert_stopped(*second)
