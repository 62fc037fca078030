"""Health probes for the local runtime's components.

NATS: its monitoring ``/healthz``; Triton: ``/v2/health/ready``; our services: ``grpc.health.v1`` Check of the
overall service ``""``. Check needs no role, but the services' port takes TLS with a client certificate
only, so the probe presents the development auditor's (`probe_credential`). `LIVENESS` and `READINESS_HTTP`
list what the watchdog (`fraudctl.watchdog`) polls.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from fraudctl.procfile import HOST, Component, Paths

if TYPE_CHECKING:
    from fraudshared.identity.pki import CredentialFiles

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
DOWN = "DOWN"

# Per component the watchdog covers: the port kind and the HTTP path that answers 200 while the server works.
LIVENESS: dict[str, tuple[str, str]] = {"nats": ("monitor", "/healthz"), "triton": ("http", "/v2/health/live")}
# Triton's process can outlive its ability to serve (a lost backend): ready is asked too. It is also not ready
# for the seconds a model loads (strict readiness), so the watchdog tolerates it far longer than a dead live.
READINESS_HTTP: dict[str, tuple[str, str]] = {"triton": ("http", "/v2/health/ready")}

# Loopback probes must never go through a proxy configured for the outside world.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


PROBE_CREDENTIAL = "auditor"  # read-only, and always issued by `fraudctl up`


def probe_credential(var_dir: Path) -> CredentialFiles:
    """The client certificate the gRPC health probe presents (``<var>/credentials/auditor``)."""
    from fraudshared.identity.pki import CredentialFiles

    return CredentialFiles.in_dir(Paths(var_dir).credentials_dir / PROBE_CREDENTIAL)


def probe(component: Component, timeout: float = 1.0, tls: CredentialFiles | None = None) -> str:
    """Asks a component whether it is ready.

    Args:
        component: The component, from the plan.
        timeout: Seconds to wait for an answer.
        tls: The client certificate for a service's gRPC port (`probe_credential`); without one, plaintext.

    Returns:
        `SERVING` (ready), `NOT_SERVING` (answers, not ready) or `DOWN` (nothing listening).
    """
    if component.name == "nats":
        if not _listening(component.ports["client"], timeout, tls):
            return DOWN
        return probe_http(component.ports["monitor"], "/healthz", timeout)
    if component.name == "triton":
        return probe_http(component.ports["http"], "/v2/health/ready", timeout)
    return _probe_grpc(component.port, timeout, tls)


def _listening(port: int, timeout: float, tls: CredentialFiles | None = None) -> bool:
    """Whether ``port`` accepts a connection (with ``tls``: completes a TLS handshake, so the server logs no error)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            if tls is None:
                return True
            from fraudshared.identity.tls import ssl_context

            # nats-server sends INFO in the clear, then expects the TLS handshake: a bare connect-and-close would
            # be logged as a failed handshake at every probe.
            sock.recv(4096)
            with contextlib.suppress(ssl.SSLError), ssl_context(tls).wrap_socket(sock, server_hostname="localhost"):
                pass
            return True
    except OSError:
        return False


def probe_http(port: int, path: str, timeout: float) -> str:
    """``GET http://127.0.0.1:<port><path>``: `SERVING` on 200, `DOWN` if refused, else `NOT_SERVING`."""
    return check_http(port, path, timeout)[0]


def check_http(port: int, path: str, timeout: float) -> tuple[str, str]:
    """Like `probe_http`, with why when not 200 (``"HTTP 503"``, ``"timed out"``...), for logs."""
    try:
        with _OPENER.open(f"http://{HOST}:{port}{path}", timeout=timeout) as response:
            return (SERVING, "") if response.status == 200 else (NOT_SERVING, f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        return NOT_SERVING, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        state = DOWN if isinstance(exc.reason, ConnectionRefusedError) else NOT_SERVING
        return state, str(exc.reason)
    except OSError as exc:  # a read timeout (a stopped server accepts the connection, then never answers)
        return NOT_SERVING, str(exc) or type(exc).__name__


def _probe_grpc(port: int, timeout: float, tls: CredentialFiles | None) -> str:
    import grpc  # Imported here: grpc costs startup time that `fraudctl logs` and `down` don't need.
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address, options = f"{HOST}:{port}", [("grpc.enable_http_proxy", 0)]
    if tls is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        from fraudshared.identity.tls import channel_credentials

        try:
            channel = grpc.secure_channel(address, channel_credentials(tls), options=options)
        except OSError:  # the credential is not there (yet): nothing can be asked
            return NOT_SERVING
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as exc:
            return DOWN if exc.code() == grpc.StatusCode.UNAVAILABLE else NOT_SERVING
    return SERVING if reply.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING
