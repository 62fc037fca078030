"""What `fraudctl up` does on NATS before any service starts, as ``service:bootstrap``.

Services may not create or change streams (NATS refuses them), so `up` creates the streams (the same
`ensure_streams` the tests use: idempotent, reports what it changed) and appends the first role grants of
the development principals (`fraudctl.credentials.DEV_ROLES`), skipping what is already granted. Then
the services start, and each restores the grants from the ACCESS stream before it answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import nats

from fraudctl.credentials import DEV_ROLES, GRANTED_BY, dev_principal
from fraudshared.events.streams import ensure_streams
from fraudshared.identity.grants import grant_role
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.tls import ssl_context

REASON = "development credential issued by fraudctl up"


class BootstrapError(RuntimeError):
    """NATS could not be reached or refused the bootstrap work; the message is one line."""


@dataclass(frozen=True)
class BootstrapResult:
    """What the bootstrap changed."""

    streams: dict[str, str]  # stream -> outcome of ensure_streams (created, unchanged, updated...)
    granted: tuple[str, ...]  # "user:dev-scorer scorer", ... appended this time


async def bootstrap(
    nats_url: str, files: CredentialFiles | None, roles: Mapping[str, str] = DEV_ROLES, timeout: float = 60.0
) -> BootstrapResult:
    """Creates the streams and grants each development principal its role.

    Args:
        nats_url: ``tls://127.0.0.1:<port>`` (or ``nats://`` for a runtime without TLS).
        files: ``service:bootstrap``'s certificate; required for ``tls://``.
        roles: Development credential name -> role.
        timeout: Seconds for the whole of it.

    Raises:
        BootstrapError: If NATS cannot be reached or refuses (the message names which step).
    """
    # asyncio warns that nats-py's protocol returns True from eof_received under TLS: harmless, not for the user.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    tls = {"tls": ssl_context(files), "tls_hostname": "localhost"} if files and nats_url.startswith("tls") else {}
    try:
        async with asyncio.timeout(10):
            nc = await nats.connect(
                nats_url, connect_timeout=3, max_reconnect_attempts=1, reconnect_time_wait=0.2, error_cb=_quiet, **tls
            )
    except Exception as exc:  # nats raises several unrelated types for "cannot connect"
        raise BootstrapError(f"cannot connect to NATS at {nats_url} as {GRANTED_BY}: {_why(exc)}") from None
    step = "creating the streams"
    try:
        async with asyncio.timeout(timeout):
            js = nc.jetstream(timeout=10.0)
            outcomes = await ensure_streams(js)
            step = "appending the first role grants"
            granted = []
            for name, role in roles.items():
                principal = dev_principal(name).id
                if await grant_role(js, principal, role, GRANTED_BY, REASON):
                    granted.append(f"{principal} {role}")
    except TimeoutError:
        raise BootstrapError(f"NATS did not finish {step} as {GRANTED_BY} within {timeout:.0f} s") from None
    except Exception as exc:  # a refused JetStream API call, a permission violation, a lost connection
        raise BootstrapError(f"NATS refused {step} as {GRANTED_BY}: {_why(exc)}") from None
    finally:
        await nc.close()
    return BootstrapResult({name: str(outcome) for name, outcome in outcomes.items()}, tuple(granted))


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _quiet(_: Exception) -> None:
    return None
