"""One lifecycle for every service: config, telemetry, NATS + streams, gRPC server, graceful shutdown.

A service supplies a bootstrap coroutine (its composition root) that receives a `ServiceContext` and returns
the servicers to serve; everything else (health, reflection, validation, tracing, metrics, signals, draining
NATS after the server stopped) is done here once. Identity is mandatory: the gRPC port requires a client
certificate from the platform's CA (FRAUD_TLS_CA_FILE, FRAUD_<SERVICE>_TLS_CERT_FILE / _KEY_FILE), every call
is checked against the access table with the roles of the live ACCESS fold (`ctx.grants`), OIDC bearer
tokens are accepted on a second port when FRAUD_OIDC_ISSUER is set, and a ``tls://`` FRAUD_NATS_URL is
reached with the service's own certificate. Readiness: the bootstrap registers what its job needs on
`ctx.readiness` (NATS connected is registered for every service); grpc.health.v1 "" reports SERVING only while
all of it holds, re-checked every FRAUD_READINESS_EVERY_S seconds (fraudshared.readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import APIError as JsApiError

from fraudshared.config import CommonConfig, ConfigError, env_float, env_int, env_port, env_str, service_env_name
from fraudshared.events.store import EventStore
from fraudshared.events.streams import StreamConfigConflict, ensure_streams
from fraudshared.grpc_server import (
    Cleanup,
    ServerSecurity,
    ServicerSpec,
    build_server,
    serve_until_signalled,
    set_ready,
)
from fraudshared.identity.grants import Grants, follow_grants
from fraudshared.identity.oidc import OidcConfig, OidcVerifier
from fraudshared.identity.principal import DEFAULT_TRUST_DOMAIN
from fraudshared.identity.tls import service_credential_files, ssl_context
from fraudshared.nats_connect import NatsRefused, connect_service
from fraudshared.rate_limit import limits_from_env
from fraudshared.readiness import Readiness, keep_reporting, own_credential, wait_until_serving
from fraudshared.telemetry import configure_logging, get_logger, setup_telemetry, start_metrics_server

# What a caller may send: kilobytes (the largest request, ScoreFeatures' 1,024 floats, is about 5 KiB)...
GRPC_MAX_MESSAGE_BYTES = 64 * 1024
# ...except to governance: RegisterModel carries two artifacts of at most 8 MiB each (the proto's limits).
GRPC_MAX_MESSAGE_BYTES_OF = {"governance": 20 * 1024 * 1024}
# What a server may answer: registry listings, artifacts and reflection's descriptors (~60 KiB) need more.
GRPC_MIN_SEND_BYTES = 4 * 1024 * 1024
T = TypeVar("T")
log = get_logger(__name__)


@dataclass
class ServiceContext:
    """What a bootstrap gets: configuration, NATS, the event store, role grants, and a cleanup list.

    ``grants`` is the live fold of the ACCESS stream the auth interceptor checks (read it, never write it).
    """

    config: CommonConfig
    nc: NATS
    js: JetStreamContext
    store: EventStore
    stack: AsyncExitStack
    on_shutdown: list[Cleanup] = field(default_factory=list)
    readiness: Readiness = field(default_factory=Readiness)
    grants: Grants = field(default_factory=Grants)


Bootstrap = Callable[[ServiceContext], Awaitable[Sequence[ServicerSpec]]]


async def run_service(
    name: str,
    bootstrap: Bootstrap,
    *,
    stop_event: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT (or `stop_event`); `on_ready` receives the bound gRPC port.

    The server answers (health "liveness" SERVING) once bootstrap returned; health "" turns SERVING when every
    readiness check passes, and back to NOT_SERVING whenever one fails.
    """
    config = CommonConfig.from_env(name)
    grpc_port = env_port(f"FRAUD_{service_env_name(name)}_GRPC_PORT", 0)
    # Loopback by default; a container sets FRAUD_BIND_HOST=0.0.0.0 so probes, peers and Prometheus reach it.
    bind_host = env_str("FRAUD_BIND_HOST", "127.0.0.1")
    max_in_flight = env_int(f"FRAUD_{service_env_name(name)}_GRPC_MAX_IN_FLIGHT", 512, minimum=0)
    readiness_every_s = env_float("FRAUD_READINESS_EVERY_S", 1.0, minimum=0.05)
    tls_files = service_credential_files(name)  # TLS is mandatory: a missing variable is named here
    oidc = OidcConfig.from_env()
    token_port = env_port(f"FRAUD_{service_env_name(name)}_GRPC_TOKEN_PORT", 0)
    trust_domain = env_str("FRAUD_TRUST_DOMAIN", DEFAULT_TRUST_DOMAIN)
    configure_logging(config.log_level)
    # Traces only when exported: without an OTLP endpoint no provider is installed and spans are no-ops.
    tracer_provider = setup_telemetry(name, config.otlp_endpoint) if config.otlp_endpoint else None
    metrics_port = start_metrics_server(config.metrics_port, host=bind_host)
    async with AsyncExitStack() as stack:
        # tls://: nats-server requires our certificate and maps its SPIFFE id to our NATS permissions.
        tls = ssl_context(tls_files) if config.nats_url.startswith("tls://") else None
        nc = await connect_service(name, config.nats_url, tls)
        stack.push_async_callback(_drain, nc)
        js = nc.jetstream()
        await _check_streams(name, js)
        context = ServiceContext(config=config, nc=nc, js=js, store=EventStore(js), stack=stack)
        context.readiness.add("nats", partial(_nats_connected, nc))
        following = await follow_grants(js, context.grants, store=context.store, reader=f"{name}-access")
        stack.push_async_callback(_stop_task, following)  # before the drain (the stack unwinds last in, first out)
        context.readiness.add("access grants restored", partial(_grants_restored, context.grants))
        servicers = await bootstrap(context)
        if gc.get_threshold()[0] > 700:  # tuned (a service process, not tests): start-up objects never move
            gc.collect()
            gc.freeze()
        server, port = await build_server(
            name,
            servicers,
            grpc_port,
            tracer_provider=tracer_provider,
            tracing=tracer_provider is not None,
            max_in_flight=max_in_flight,
            host=bind_host,
            ready=False,
            options=grpc_message_options(name),
            security=ServerSecurity(
                tls_files,
                context.grants,
                OidcVerifier(oidc) if oidc else None,
                token_port=token_port,
                trust_domain=trust_domain,
                rate_limits=limits_from_env(name, service_env_name(name)),
            ),
        )
        await server.start()
        reporting = asyncio.ensure_future(
            keep_reporting(name, context.readiness, partial(set_ready, server), readiness_every_s)
        )
        context.on_shutdown.insert(0, reporting.cancel)  # before anything it checks is closed
        serving = asyncio.ensure_future(serve_until_signalled(server, context.on_shutdown, stop_event=stop_event))
        await asyncio.sleep(0)  # let it install the SIGTERM/SIGINT handlers before anyone is told we are ready
        log.info("%s serving grpc_port=%d metrics_port=%d", name, port, metrics_port)
        if on_ready is not None:
            on_ready(port)
        try:
            await serving
        finally:
            reporting.cancel()
    if tracer_provider is not None:
        tracer_provider.shutdown()


class StreamsNotReady(RuntimeError):
    """The event log's streams are missing or differ from their declaration, and this service may not fix them."""


async def _check_streams(name: str, js: JetStreamContext) -> None:
    """Ensures the declared streams; a service may only read their configuration (NATS permissions).

    Creating or updating a stream is the bootstrap principal's job (`fraudctl up`, the Terraform bootstrap Job):
    when a stream is missing or drifted, the service's own attempt is refused, and it says so in one line.
    """
    try:
        await ensure_streams(js)
    except (StreamConfigConflict, JsApiError, nats.errors.TimeoutError) as exc:
        raise StreamsNotReady(
            f"{name}: the event log's streams are missing or differ from their declaration and this service may "
            f"not create or update them ({type(exc).__name__}); run `fraudctl up` (service:bootstrap creates them)"
        ) from exc


async def _nats_connected(nc: NATS) -> str | None:
    return None if nc.is_connected else "NATS is not connected (reconnecting)"


async def _stop_task(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _grants_restored(grants: Grants) -> str | None:
    return None if grants.restored else "access grants not yet read from the ACCESS stream"


def grpc_message_options(name: str) -> list[tuple[str, int]]:
    """Message bounds of service `name`'s server: a larger request is answered RESOURCE_EXHAUSTED by grpc.

    Receive: FRAUD_<SERVICE>_GRPC_MAX_MESSAGE_BYTES (default `GRPC_MAX_MESSAGE_BYTES`, governance more);
    send: the receive bound, at least `GRPC_MIN_SEND_BYTES`.
    """
    default = GRPC_MAX_MESSAGE_BYTES_OF.get(name, GRPC_MAX_MESSAGE_BYTES)
    variable = f"FRAUD_{service_env_name(name)}_GRPC_MAX_MESSAGE_BYTES"
    receive = env_int(variable, default, minimum=1024, maximum=64 * 1024 * 1024)
    return [
        ("grpc.max_receive_message_length", receive),
        ("grpc.max_send_message_length", max(receive, GRPC_MIN_SEND_BYTES)),
    ]


async def _drain(nc: NATS) -> None:
    with contextlib.suppress(Exception):
        await nc.drain()


def run_event_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """uvloop.run (the default, FRAUD_EVENT_LOOP=uvloop), or asyncio.run with FRAUD_EVENT_LOOP=asyncio.

    Measured with `make bench-ab` (both loops at once, requests alternating): uvloop spent about 5% less CPU
    per decision, all processes, with a 5% lower median. An earlier sequential comparison that favoured
    asyncio was within this machine's drift.
    """
    if env_str("FRAUD_EVENT_LOOP", "uvloop") == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def tune_gc() -> None:
    """Fewer, cheaper collections in a service process (FRAUD_GC_GEN0_THRESHOLD; 0 keeps Python's defaults).

    The young generation is collected every N allocations; Python's 700 makes a busy service collect hundreds
    of times a second, and every older collection walks the whole heap (the features state is millions of
    tuples). A larger threshold plus `gc.freeze()` after start-up (see `run_service`) keeps pauses short.
    """
    threshold = env_int("FRAUD_GC_GEN0_THRESHOLD", 50_000, minimum=0)
    if threshold:
        gc.set_threshold(threshold, 20, 100)


def lower_cpu_priority() -> int:
    """Yield the CPU to the decision path (FRAUD_CPU_NICENESS, 0-19; 0, the default, changes nothing).

    Off-hot-path services (the notary, the monitor) set it in the local runtime. A nice value alone does not
    do it: Linux's autogroup scheduler shares the CPU fairly between sessions first, and each process the
    runtime starts leads its own session, so a session leader also lowers its autogroup's share
    (/proc/self/autogroup). Measured: nice alone left the notary's CPU per decision unchanged.
    Returns the niceness applied.
    """
    niceness = env_int("FRAUD_CPU_NICENESS", 0, minimum=0)
    if niceness <= 0:
        return 0
    niceness = min(niceness, 19)
    os.nice(niceness)
    if os.getsid(0) == os.getpid():  # only our own session: never renice the shell that started us
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(f"{niceness}\n")
    return niceness


def main(name: str, bootstrap: Bootstrap) -> None:
    """Process entry point: one clear line and exit code 2 on a configuration error, not a traceback."""
    tune_gc()
    lower_cpu_priority()
    try:
        run_event_loop(run_service(name, bootstrap))
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, nats.errors.NoServersError, StreamsNotReady, NatsRefused) as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


@dataclass
class RunningService:
    """A service started in-process (tests, embedded runs)."""

    port: int
    stop_event: asyncio.Event
    task: asyncio.Task[Any]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.stop_event.set()
        await self.task


async def start_in_process(
    name: str, bootstrap: Bootstrap, timeout: float = 30.0, *, wait_ready: bool = False
) -> RunningService:
    """Start a service as a task of the running loop and wait until it serves (and is ready, with `wait_ready`)."""
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_service(name, bootstrap, stop_event=stop, on_ready=ready.set_result))
    waiters: set[asyncio.Future[Any]] = {task, ready}
    done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        stop.set()
        if task in done:
            task.result()  # raises the startup error
        raise TimeoutError(f"{name} did not become ready within {timeout}s")
    service = RunningService(port=ready.result(), stop_event=stop, task=task)
    if wait_ready:
        try:
            await wait_until_serving(service.address, timeout, credential=own_credential(name))
        except TimeoutError:
            await service.stop()
            raise
    return service
