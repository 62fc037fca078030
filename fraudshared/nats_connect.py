"""A service's connection to NATS: refused credentials stop the start with one line; a server not up yet is waited for.

nats-py retries an initial connect forever when told to reconnect forever, whatever the reason it failed, and
logs a traceback each time: a service whose certificate the server does not accept (another CA, no NATS user
for its principal) would loop, never saying why in a way an operator reads. So the first attempt is made
without retries and its failure is classified: the server refusing us (authorization, TLS verification) is
fatal and named; a server that is not listening yet is waited for as before. Later disconnects reconnect
forever, and asynchronous errors are logged as one line without a traceback.
"""

from __future__ import annotations

import asyncio
import ssl

import nats
import nats.errors
from nats.aio.client import Client as NATS

from fraudshared.telemetry import get_logger

log = get_logger(__name__)
_PROBES = 3
_REFUSALS = ("authorization violation", "authentication", "permissions violation", "user authentication expired")


class NatsRefused(RuntimeError):
    """nats-server refused this process's credentials: retrying cannot help."""


def _refusal(exc: BaseException) -> str | None:
    """Why the server refused us, or None when the failure may pass (server not up, network)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate does not verify against our CA ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__}): is our certificate from the server's CA?"
    text = str(exc).lower()
    if any(marker in text for marker in _REFUSALS):
        return f"the server refused our credentials ({str(exc).strip()})"
    return None


async def _probe(name: str, url: str, tls: ssl.SSLContext | None, timeout: float) -> list[BaseException] | None:
    """One connect without retries: None when it worked, else what failed (raised and reported)."""
    seen: list[BaseException] = []

    async def keep(exc: Exception) -> None:  # nats-py reports some failures here and raises another error
        seen.append(exc)

    try:
        probe = await nats.connect(
            url, name=name, tls=tls, connect_timeout=timeout, allow_reconnect=False, error_cb=keep
        )
    except Exception as exc:  # nats-py raises its own, ssl's and OSError's kinds here
        return [c for c in (exc, exc.__cause__, exc.__context__, *seen) if c is not None]
    await probe.close()
    return None


async def _log_error(exc: Exception) -> None:
    log.warning("NATS: %s", (str(exc) or type(exc).__name__).strip())


async def connect_service(name: str, url: str, tls: ssl.SSLContext | None, *, connect_timeout: float = 5.0) -> NATS:
    """Connects ``name`` to NATS at ``url`` (with ``tls`` for tls:// URLs), reconnecting forever once connected.

    Raises:
        NatsRefused: When the server refuses this process's certificate or identity (names the cause and the
            principal the server saw, never a key).
    """
    for attempt in range(1, _PROBES + 1):
        failure = await _probe(name, url, tls, connect_timeout)
        if failure is None:
            break
        why = next((reason for cause in failure if (reason := _refusal(cause))), None)
        if why is not None:
            raise NatsRefused(f"NATS at {url}: {why}")
        if tls is None or not all(isinstance(cause, ConnectionResetError) for cause in failure):
            log.warning("%s: NATS at %s not reachable yet (%s); retrying", name, url, type(failure[0]).__name__)
            break
        # TLS 1.3: the server checks our certificate after the client's side of the handshake is done, and a
        # refusal reaches us only as the connection closing. Once could be a restart; every time is a refusal.
        if attempt == _PROBES:
            raise NatsRefused(
                f"NATS at {url}: the server closed every TLS connection during the handshake "
                f"({_PROBES} attempts): it does not accept our certificate (issued by another CA?)"
            )
        await asyncio.sleep(1.0)
    return await nats.connect(
        url,
        name=name,
        tls=tls,
        connect_timeout=connect_timeout,
        max_reconnect_attempts=-1,
        error_cb=_log_error,
    )
