"""Readiness: checks and flags decide health "" (and each served name); "liveness" stays SERVING."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from fraudshared.grpc_server import LIVENESS, build_server, set_ready
from fraudshared.identity.tls import server_credentials
from fraudshared.readiness import READY, Readiness, keep_reporting, own_credential, wait_until_serving
from tests.fixtures.identity import DevPki

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
ECHO = "test.Echo"


def _add_echo(servicer: object, server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO, {"Echo": handler}),))


async def test_all_checks_pass_means_ready() -> None:
    readiness = Readiness()
    readiness.add("nats", _passes)
    readiness.add("models", _passes)
    assert await readiness.evaluate() is None and readiness.why_not is None


async def test_each_failing_check_is_named_with_its_reason() -> None:
    readiness = Readiness()
    readiness.add("nats", _passes)
    readiness.add("models", _fails("champion not loaded"))
    readiness.add("state", _fails("restoring"))
    assert await readiness.evaluate() == "models: champion not loaded; state: restoring"


async def test_a_check_that_raises_or_hangs_is_not_ready() -> None:
    never = asyncio.Event()

    async def hangs() -> str | None:
        await never.wait()
        return None

    async def raises() -> str | None:
        raise ConnectionError("refused")

    readiness = Readiness(check_timeout_s=0.05)
    readiness.add("hangs", hangs)
    readiness.add("raises", raises)
    why = await readiness.evaluate()
    assert why is not None and "hangs: no answer within 0.05 s" in why and "raises: the check failed (Connection" in why


async def test_a_flag_starts_not_ready_and_the_service_flips_it() -> None:
    readiness = Readiness()
    restored = readiness.flag("state", "restoring the snapshot")
    assert await readiness.evaluate() == "state: restoring the snapshot"
    restored.ready()
    assert await readiness.evaluate() is None
    restored.not_ready("rebuilding after a conflict")
    assert await readiness.evaluate() == "state: rebuilding after a conflict"


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Server, health_pb2_grpc.HealthStub, str]]:
    server, port = await build_server("test", [(_add_echo, object(), ECHO)], 0, ready=False)
    await server.start()
    address = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(address) as channel:
        yield server, health_pb2_grpc.HealthStub(channel), address
    await server.stop(0)


async def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status


async def test_a_server_built_not_ready_is_alive_but_not_serving(served) -> None:
    server, stub, _ = served
    assert [await _status(stub, s) for s in ("", ECHO, LIVENESS)] == [NOT_SERVING, NOT_SERVING, SERVING]
    await set_ready(server, True)
    assert [await _status(stub, s) for s in ("", ECHO, LIVENESS)] == [SERVING, SERVING, SERVING]


async def test_reporting_follows_the_checks_both_ways(served) -> None:
    server, stub, address = served
    readiness = Readiness()
    connected = readiness.flag("nats", "not connected")
    reporting = asyncio.ensure_future(keep_reporting("test", readiness, partial(set_ready, server), 0.01))
    try:
        connected.ready()
        await wait_until_serving(address, timeout_s=10)
        assert READY.labels("test")._value.get() == 1  # the gauge is set before health changes
        connected.not_ready("reconnecting")  # losing what the job needs turns it back
        await _until(stub, NOT_SERVING)
        assert await _status(stub, LIVENESS) == SERVING and READY.labels("test")._value.get() == 0
    finally:
        reporting.cancel()


async def test_waiting_for_a_server_that_never_gets_ready_times_out_naming_its_status(served) -> None:
    _, _, address = served
    with pytest.raises(TimeoutError, match=r"not SERVING within 0.3 s \(last: NOT_SERVING\)"):
        await wait_until_serving(address, timeout_s=0.3)


async def test_waiting_on_an_mtls_port_presents_the_services_own_certificate(dev_pki: DevPki) -> None:
    health = health_aio.HealthServicer()
    await health.set("", SERVING)
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(dev_pki.service_files("monitor")))
    await server.start()
    address = f"127.0.0.1:{port}"
    try:
        await wait_until_serving(address, timeout_s=10, credential=own_credential("ingest"))
        with pytest.raises(TimeoutError, match=r"last: UNAVAILABLE"):  # plaintext gets no answer from a TLS port
            await wait_until_serving(address, timeout_s=0.5)
    finally:
        await server.stop(0)


async def _passes() -> str | None:
    return None


def _fails(why: str) -> Callable[[], Awaitable[str | None]]:
    async def check() -> str | None:
        return why

    return check


async def _until(stub: health_pb2_grpc.HealthStub, status: int, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if await _status(stub, "") == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"health '' never became {status}")
