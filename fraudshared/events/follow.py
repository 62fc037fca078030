"""Follow a stream: catch up on what is stored, then receive new events as they are appended.

Used by services that fold a stream into in-memory state (scoring folds MODELS, monitor folds PREDICTIONS).
Delivery is an ordered push consumer: in stream order, no acks, recreated by nats.py on gaps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from fraudshared.events.envelope import Envelope, from_nats
from fraudshared.events.store import EventStore
from fraudshared.telemetry import get_logger

Handler = Callable[[int, Envelope], Awaitable[None] | None]
log = get_logger(__name__)


async def follow(
    js: JetStreamContext, store: EventStore, stream: str, subject: str, handler: Handler, from_seq: int = 1
) -> Subscription:
    """Apply every stored event from `from_seq` to `handler(seq, envelope)`, then keep applying new ones.

    Returns the live subscription (unsubscribe it on shutdown). Catch-up completes before this returns,
    so state folded by `handler` is current as of the call.
    """
    last = from_seq - 1
    async for stored in store.read_subject(stream, subject, from_seq):
        await _call(handler, stored.seq, stored.envelope)
        last = stored.seq

    async def on_message(msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            await _call(handler, seq, from_nats(msg.headers, msg.data))
        except Exception:
            log.exception("follower of %s failed on sequence %d", stream, seq)

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=last + 1)
    return await js.subscribe(subject, stream=stream, cb=on_message, ordered_consumer=True, config=config)


async def _call(handler: Handler, seq: int, envelope: Envelope) -> None:
    result = handler(seq, envelope)
    if result is not None:
        await result
