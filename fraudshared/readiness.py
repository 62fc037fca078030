"""Readiness: whether a service can do its job now, reported through grpc.health.v1.

A bootstrap registers checks on `ServiceContext.readiness`: async callables that answer None when that part
of the job can be done and a short reason when it cannot, or flags the service flips itself. The lifecycle
(`fraudshared.service.run_service`) evaluates them as soon as the server runs, then every
FRAUD_READINESS_EVERY_S seconds off the hot path, and reports the overall health service "" (and each served
service name) SERVING only while every check passes. The name "liveness" is SERVING while the server runs,
so a supervisor can tell "alive but not ready" from "dead" (see docs/runtime.md, Readiness).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Gauge

from fraudshared.identity.client import ClientCredential, secure_aio_channel
from fraudshared.identity.tls import service_credential_files
from fraudshared.telemetry import get_logger

Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 5.0
READY = Gauge("fraud_service_ready", "1 while every readiness check of the service passes, else 0", ["service"])
log = get_logger(__name__)


class ReadinessFlag:
    """A condition the service sets itself (e.g. "state restored"); not ready until `ready()` is called."""

    def __init__(self, why_not: str | None) -> None:
        self.why_not = why_not

    def ready(self) -> None:
        self.why_not = None

    def not_ready(self, why: str) -> None:
        self.why_not = why

    async def check(self) -> str | None:
        return self.why_not


class Readiness:
    """The readiness checks of one service; `evaluate()` runs them all and keeps the verdict."""

    def __init__(self, check_timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout_s = check_timeout_s
        self.why_not: str | None = "not evaluated yet"

    def add(self, name: str, check: Check) -> None:
        """Register `check` (None = passes, else why not); a later check of the same name replaces it."""
        self._checks[name] = check

    def flag(self, name: str, why_not: str = "starting") -> ReadinessFlag:
        """Register and return a flag the service flips; it starts not ready with `why_not`."""
        flag = ReadinessFlag(why_not)
        self.add(name, flag.check)
        return flag

    async def evaluate(self) -> str | None:
        """Run every check at once; None when all pass, else "name: reason" of each that failed."""
        names = list(self._checks)
        verdicts = await asyncio.gather(*(self._run(name) for name in names))
        failed = [f"{name}: {why}" for name, why in zip(names, verdicts, strict=True) if why is not None]
        self.why_not = "; ".join(failed) or None
        return self.why_not

    async def _run(self, name: str) -> str | None:
        try:
            return await asyncio.wait_for(self._checks[name](), self._timeout_s)
        except TimeoutError:
            return f"no answer within {self._timeout_s:g} s"
        except Exception as exc:  # a broken check means "cannot tell", which is not ready
            log.warning("readiness check %s failed: %r", name, exc)
            return f"the check failed ({type(exc).__name__})"


async def keep_reporting(
    service: str, readiness: Readiness, publish: Callable[[bool], Awaitable[None]], every_s: float
) -> None:
    """Evaluate `readiness` now and every `every_s` seconds; `publish` each change and log it (runs until cancelled)."""
    ready: bool | None = None
    while True:
        why_not = await readiness.evaluate()
        if (why_not is None) != ready:
            ready = why_not is None
            READY.labels(service).set(int(ready))
            await publish(ready)
            if ready:
                log.info("%s ready", service)
            else:
                log.warning("%s not ready: %s", service, why_not)
        await asyncio.sleep(every_s)


async def wait_until_serving(
    address: str, timeout_s: float = 30.0, service: str = "", *, credential: ClientCredential | None = None
) -> None:
    """Poll grpc.health.v1 at `address` until `service` ("" = the whole server) is SERVING.

    Health needs no role, but every service's port needs a client certificate from the platform's CA:
    pass `credential` (e.g. the service's own, `own_credential(name)`). None speaks plaintext, for a bare
    `build_server` without security only.

    Raises:
        TimeoutError: If it is not SERVING within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    status = "DOWN"
    options = [("grpc.enable_http_proxy", 0)]
    if credential is None:
        channel = grpc.aio.insecure_channel(address, options=options)
    else:
        channel = secure_aio_channel(address, credential, options=options)
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{address} health {service!r} not SERVING within {timeout_s:g} s (last: {status})")


def own_credential(service: str) -> ClientCredential:
    """Service `service`'s own certificate (FRAUD_TLS_CA_FILE, FRAUD_<SERVICE>_TLS_CERT_FILE/KEY_FILE) as a client.

    Raises:
        fraudshared.config.ConfigError: If a variable is missing or a file unreadable (it names which).
    """
    files = service_credential_files(service)
    return ClientCredential(ca=files.ca, files=files)
