"""Wires the notary into the governance service as a background task (started from its composition root)."""

from __future__ import annotations

import asyncio
import contextlib

from fraudshared.audit.keys import AuditKeyError
from fraudshared.service import ServiceContext
from fraudshared.telemetry import get_logger
from services.governance.notary.adapters.log import JetStreamNotaryLog
from services.governance.notary.adapters.signing import SecretsSigningKeys
from services.governance.notary.service import Notary, NotaryConfig, audited_streams

log = get_logger(__name__)
STOP_TIMEOUT_S = 10.0


async def start_notary(ctx: ServiceContext) -> Notary:
    """Starts the notary on the service's NATS connection; it stops (cleanly) with the service.

    Raises:
        fraudshared.config.ConfigError: If ``FRAUD_NOTARY_EVERY_N`` / ``FRAUD_NOTARY_EVERY_S`` are unusable.
    """
    config = NotaryConfig.from_env()
    keys = await asyncio.to_thread(SecretsSigningKeys.from_env)
    try:
        key = await keys.current()
        log.info("notary: signing key %s version %d", key.key_id, key.version)
    except AuditKeyError as exc:  # keep serving the registry; the notary retries and logs until the key is fixed
        log.error("notary: %s", exc)
    notary = Notary(JetStreamNotaryLog(ctx.js, ctx.store), keys, audited_streams(), config)
    stop = asyncio.Event()
    task = asyncio.create_task(notary.run(stop), name="notary")

    async def shutdown() -> None:
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, STOP_TIMEOUT_S)

    ctx.on_shutdown.append(shutdown)
    log.info("notary: sealing every %d events or %.1fs", config.every_n, config.every_s)
    return notary
