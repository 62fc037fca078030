"""One way to build, run and stop a service's grpc.aio server.

`build_server` binds loopback and wires what every service exposes: grpc.health.v1, reflection,
OpenTelemetry spans, Prometheus RPC metrics, the request guard (undecodable bodies answer INVALID_ARGUMENT,
unexpected errors INTERNAL with a logged reference, never Python text), authentication and authorization
(`ServerSecurity`: mTLS on the main port, an optional bearer-token port, roles from the access table) and
protovalidate request validation.
Health has two meanings: the overall service "" and each served name report readiness (`set_ready`),
"liveness" reports that the server runs. `serve_until_signalled` waits for SIGTERM/SIGINT, then stops the
server with a grace period and runs the cleanup callbacks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import prometheus_client
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import TracerProvider

from fraudshared.identity.grants import Grants
from fraudshared.identity.interceptor import AuthInterceptor
from fraudshared.identity.oidc import OidcVerifier
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.principal import DEFAULT_TRUST_DOMAIN
from fraudshared.identity.tls import server_credentials, token_server_credentials
from fraudshared.rate_limit import RateLimit, RateLimitInterceptor
from fraudshared.request_guard import GuardInterceptor
from fraudshared.unary_interceptor import UnaryWrappingInterceptor
from fraudshared.validation import ValidationInterceptor

log = logging.getLogger(__name__)

# (add_XServicer_to_server, servicer instance, full service name such as "fraud.v1.IngestService")
ServicerSpec = tuple[Callable[[Any, grpc.aio.Server], None], object, str]
Cleanup = Callable[[], Awaitable[Any] | Any]

RPC_HANDLED = prometheus_client.Counter(
    "grpc_server_handled", "RPCs completed on the server.", ["grpc_service", "grpc_method", "grpc_code"]
)
RPC_LATENCY = prometheus_client.Histogram(
    "grpc_server_handling_seconds",
    "Server-side RPC latency until the response or error.",
    ["grpc_service", "grpc_method"],
    # The hot path takes about a millisecond per hop, so the buckets start well below the library default.
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# The grpc.health.v1 name that is SERVING while the server runs, whatever its readiness ("" and each served name).
LIVENESS = "liveness"

_token_ports: weakref.WeakKeyDictionary[grpc.aio.Server, int] = weakref.WeakKeyDictionary()
_health_by_server: weakref.WeakKeyDictionary[grpc.aio.Server, health.aio.HealthServicer] = weakref.WeakKeyDictionary()
_ready_names: weakref.WeakKeyDictionary[grpc.aio.Server, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _split_method(full_method: str) -> tuple[str, str]:
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


class MetricsInterceptor(UnaryWrappingInterceptor):
    """Counts unary RPCs by service, method and status code, observes their latency, and bounds in-flight work.

    Beyond `max_in_flight` unary calls being handled, a new call is answered RESOURCE_EXHAUSTED at once:
    overload sheds instead of queueing without bound (0 = no bound).
    """

    def __init__(self, max_in_flight: int = 0) -> None:
        super().__init__()
        self._max_in_flight = max_in_flight
        self._in_flight = 0

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        service, method = _split_method(full_method)
        behavior = handler.unary_unary
        latency = RPC_LATENCY.labels(service, method)
        handled: dict[str, Any] = {}

        def count(code: str) -> None:
            counter = handled.get(code)
            if counter is None:
                counter = handled[code] = RPC_HANDLED.labels(service, method, code)
            counter.inc()

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self._max_in_flight and self._in_flight >= self._max_in_flight:
                count("RESOURCE_EXHAUSTED")
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{service} is overloaded; retry later")
            start = time.perf_counter()
            failed = True
            self._in_flight += 1
            try:
                result = behavior(request, context)
                response = await result if inspect.isawaitable(result) else result
                failed = False
                return response
            finally:
                self._in_flight -= 1
                code = context.code()
                if code is None:
                    code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                count(code.name if isinstance(code, grpc.StatusCode) else str(code))
                latency.observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True)
class ServerSecurity:
    """How a server authenticates and authorizes callers.

    Attributes:
        files: The service's CA, certificate and key (the main port requires a client certificate from the CA).
        grants: The live fold of role grants the access table is checked against.
        verifier: Verifies OIDC bearer tokens; when set, a second TLS port without client certificates
            accepts them (grpc python cannot request a client certificate without requiring it).
        token_port: The token port (0 = let the OS choose; used only with ``verifier``).
        trust_domain: The SPIFFE trust domain client certificates must name.
        rate_limits: Full method name -> the rate each caller (principal) may call it at; checked right after
            authentication, so a caller over its rate costs no validation or handler work.
    """

    files: CredentialFiles
    grants: Grants
    verifier: OidcVerifier | None = None
    token_port: int = 0
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)


def token_port(server: grpc.aio.Server) -> int | None:
    """The bearer-token port `build_server` bound for ``server`` (None without OIDC)."""
    return _token_ports.get(server)


async def build_server(
    service_name: str,
    servicers: Sequence[ServicerSpec],
    port: int = 0,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    tracer_provider: TracerProvider | None = None,
    host: str = "127.0.0.1",
    options: Sequence[tuple[str, Any]] = (),
    max_in_flight: int = 0,
    tracing: bool = True,
    ready: bool = True,
    security: ServerSecurity | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Builds a grpc.aio server (not yet started) with health, reflection, tracing, metrics and validation.

    Interceptors run outermost first: OpenTelemetry, metrics, the request guard, authentication (with
    ``security``), validation, then ``interceptors``: the guard sees every error below it, metrics count the
    codes it answers, and an unauthenticated caller learns nothing about the request's field rules.

    Args:
        service_name: Logical service name, for logs.
        servicers: What to serve; each is listed by reflection and its grpc.health.v1 status follows readiness.
        port: TCP port; 0 lets the OS choose.
        interceptors: Extra interceptors, run after validation.
        tracer_provider: Provider for server spans; the global one when None.
        host: Address to bind; loopback unless a deployment says otherwise.
        options: grpc channel arguments (e.g. ``grpc.max_receive_message_length``: a larger request is
            answered RESOURCE_EXHAUSTED by grpc itself, before any Python runs).
        max_in_flight: Unary calls handled at once before new ones get RESOURCE_EXHAUSTED (0 = unbounded).
        tracing: Add the OpenTelemetry server interceptor (off when no trace is exported: it costs CPU per call).
        ready: Initial readiness of "" and the served names (`set_ready` changes it); "liveness" is SERVING.
        security: mTLS + roles (see `ServerSecurity`). None serves PLAINTEXT with no authentication: only
            for unit tests of other interceptors; every service runs with security (`run_service`).

    Returns:
        The server and the port it is bound to. Call ``await server.start()`` next.

    Raises:
        RuntimeError: If the address cannot be bound.
    """
    chain: list[grpc.aio.ServerInterceptor] = [
        MetricsInterceptor(max_in_flight),
        GuardInterceptor(),
        ValidationInterceptor(),
    ]
    if security is not None:
        auth = AuthInterceptor(security.grants, security.verifier, trust_domain=security.trust_domain)
        chain[2:2] = [auth, RateLimitInterceptor(security.rate_limits)] if security.rate_limits else [auth]
    if tracing:
        chain.insert(0, aio_server_interceptor(tracer_provider=tracer_provider))
    server = grpc.aio.server(interceptors=[*chain, *interceptors], options=list(options))
    names = []
    for add_to_server, servicer, full_name in servicers:
        add_to_server(servicer, server)
        names.append(full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    _health_by_server[server] = health_servicer
    _ready_names[server] = (health.OVERALL_HEALTH, *names)
    await set_ready(server, ready)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if security is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", server_credentials(security.files))
    if not bound:
        raise RuntimeError(f"{service_name}: cannot bind gRPC on {host}:{port}")
    mode = "PLAINTEXT, no authentication" if security is None else "mTLS"
    log.info("%s: gRPC (%s) bound on %s:%d serving %s", service_name, mode, host, bound, ", ".join(names) or "nothing")
    if security is not None and security.verifier is not None:
        token_bound = server.add_secure_port(f"{host}:{security.token_port}", token_server_credentials(security.files))
        if not token_bound:
            raise RuntimeError(f"{service_name}: cannot bind the gRPC token port on {host}:{security.token_port}")
        _token_ports[server] = token_bound
        log.info("%s: gRPC bearer-token port (TLS, OIDC) bound on %s:%d", service_name, host, token_bound)
    return server, bound


def health_servicer(server: grpc.aio.Server) -> health.aio.HealthServicer | None:
    """Returns the health servicer `build_server` attached to ``server`` (to change statuses at runtime)."""
    return _health_by_server.get(server)


async def set_ready(server: grpc.aio.Server, ready: bool) -> None:
    """Reports the overall service "" and every served name SERVING (ready) or NOT_SERVING; "liveness" stays."""
    servicer = _health_by_server.get(server)
    if servicer is None:
        return
    status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in _ready_names.get(server, ()):
        await servicer.set(name, status)


class GracefulShutdown:
    """Stops a server then runs cleanup callbacks, once; later calls wait for the first one to finish."""

    def __init__(self, server: grpc.aio.Server, on_shutdown: Sequence[Cleanup] = (), *, grace_s: float = 5.0) -> None:
        self._server = server
        self._callbacks = list(on_shutdown)
        self._grace_s = grace_s
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        health_of_server = health_servicer(self._server)
        if health_of_server is not None:
            await health_of_server.enter_graceful_shutdown()  # callers' health checks see NOT_SERVING first
        await self._server.stop(self._grace_s)
        for callback in self._callbacks:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("shutdown callback %r failed", callback)


# Several services may share one process (embedded runs): one signal handler stops them all.
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_signal_targets: set[asyncio.Event] = set()


def _on_signal() -> None:
    for event in list(_signal_targets):
        event.set()


def _watch_signals(stop: asyncio.Event) -> None:
    if not _signal_targets:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            try:
                loop.add_signal_handler(sig, _on_signal)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signal support
                log.debug("cannot install a handler for %s here", sig.name)
    _signal_targets.add(stop)


def _unwatch_signals(stop: asyncio.Event) -> None:
    _signal_targets.discard(stop)
    if not _signal_targets:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


async def serve_until_signalled(
    server: grpc.aio.Server,
    on_shutdown: Sequence[Cleanup] = (),
    *,
    grace_s: float = 5.0,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Waits for SIGTERM/SIGINT (or ``stop_event``, or the server ending), then shuts down gracefully.

    Args:
        server: A started server.
        on_shutdown: Callables (sync or async) run in order after the server stopped, e.g. ``nc.drain``.
        grace_s: Seconds in-flight RPCs get to finish before they are cancelled.
        stop_event: Event that also triggers shutdown (tests, embedded runs).
    """
    stop = stop_event or asyncio.Event()
    _watch_signals(stop)
    stopped = asyncio.ensure_future(stop.wait())
    # Never cancel this one: grpc would cancel the server's own shutdown future with it.
    terminated = asyncio.ensure_future(server.wait_for_termination())
    try:
        await asyncio.wait([stopped, terminated], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        _unwatch_signals(stop)
        await GracefulShutdown(server, on_shutdown, grace_s=grace_s)()
        await terminated
