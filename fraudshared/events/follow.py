"""Follow a stream: catch up on what is stored, then receive new events as they are appended.

Used by services that fold a stream into in-memory state (scoring folds MODELS, monitor folds PREDICTIONS).
Live delivery is an ephemeral pull consumer read in batches (no acks): one wake-up handles every event that
arrived meanwhile, which under load costs far less CPU than a callback per message. A follower off the hot
path can also `linger`: after a batch that was not full it waits that long before reading again, so a busy
stream is read in large batches instead of one read per event (measured: the monitor spent ~0.3 ms of CPU per
decision at 300 tx/s following PREDICTIONS without it). A lone event after a quiet spell is still handled at
once; lingering only delays the events that follow it, by at most `linger_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fraudshared.events.envelope import Envelope, from_nats
from fraudshared.events.store import EventStore
from fraudshared.telemetry import get_logger

Handler = Callable[[int, Envelope], Awaitable[None] | None]
log = get_logger(__name__)
BATCH = 256
IDLE_WAIT_S = 5.0


async def follow(
    js: JetStreamContext,
    store: EventStore,
    stream: str,
    subject: str,
    handler: Handler,
    from_seq: int = 1,
    linger_s: float = 0.0,
) -> Follower:
    """Apply every stored event from `from_seq` to `handler(seq, envelope)`, then keep applying new ones.

    Returns the running follower (stop it on shutdown). Catch-up completes before this returns, so state
    folded by `handler` is current as of the call.
    """
    last = from_seq - 1
    async for stored in store.read_subject(stream, subject, from_seq):
        await _call(handler, stored.seq, stored.envelope)
        last = stored.seq

    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=last + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
    )
    subscription = await js.pull_subscribe(subject, stream=stream, config=config)

    async def pump() -> None:
        while True:
            try:
                batch = await subscription.fetch(BATCH, timeout=IDLE_WAIT_S)
            except TimeoutError:
                continue
            for msg in batch:
                seq = msg.metadata.sequence.stream
                try:
                    await _call(handler, seq, from_nats(msg.headers, msg.data))
                except Exception:
                    log.exception("follower of %s failed on sequence %d", stream, seq)
            if linger_s > 0 and len(batch) < BATCH:
                await asyncio.sleep(linger_s)

    return Follower(subscription, asyncio.ensure_future(pump()))


@dataclass
class Follower:
    """A running follower; `stop()` it on shutdown."""

    subscription: JetStreamContext.PullSubscription
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        with contextlib.suppress(Exception):
            await self.subscription.unsubscribe()


async def _call(handler: Handler, seq: int, envelope: Envelope) -> None:
    result = handler(seq, envelope)
    if result is not None:
        await result
