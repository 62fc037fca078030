"""Reading the log for the audit trail: event hashes by sequence, and a stream's checkpoints (JetStream I/O).

`read_event_hashes` yields *every* sequence of a range exactly once, in order: a sequence the consumer did not
deliver is asked for directly, and reported as None only when the server has no readable message there
(the JetStream file store drops a record whose checksum fails). A read that fails for another reason raises
`AuditReadError`: the audit trail never treats data it could not read as verified.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError

from fraudshared.audit.checkpoint import Checkpoint, CheckpointError, checkpoint_subject
from fraudshared.audit.leaves import event_hash
from fraudshared.events.envelope import EnvelopeError, from_nats

AUDIT_STREAM = "AUDIT"
FETCH_BATCH = 2000
FETCH_TIMEOUT_S = 5.0


class AuditReadError(Exception):
    """The log could not be read (connection, timeout, server error); nothing may be reported verified."""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint event as read from AUDIT: its sequence there, and the checkpoint or why it is unreadable."""

    audit_seq: int
    checkpoint: Checkpoint | None
    error: str = ""


async def stream_bounds(js: JetStreamContext, stream: str) -> tuple[int, int]:
    """``(first_seq, last_seq)`` of a stream (``(0, 0)`` when empty).

    Raises:
        nats.js.errors.NotFoundError: If the stream does not exist.
    """
    state = (await js.stream_info(stream)).state
    return int(state.first_seq or 0), int(state.last_seq or 0)


async def _messages(js: JetStreamContext, stream: str, subject: str, start: int, end: int) -> AsyncIterator[Msg]:
    """Messages on ``subject`` from ``start`` up to ``end`` as one ephemeral, ack-less consumer delivers them."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    sub = await js.pull_subscribe(subject, stream=stream, config=config)
    try:
        if (await sub.consumer_info()).num_pending == 0:
            return
        while True:
            try:
                batch = await sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
            except TimeoutError:
                return  # the caller asks for whatever is still missing directly
            for msg in batch:
                yield msg
                if msg.metadata.sequence.stream >= end or msg.metadata.num_pending == 0:
                    return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if config.name:  # else it expires after inactive_threshold
            with contextlib.suppress(Exception):
                await asyncio.shield(js.delete_consumer(stream, config.name))


async def _direct(js: JetStreamContext, stream: str, seq: int) -> bytes | None:
    try:
        raw = await js.get_msg(stream, seq)
    except NotFoundError:
        return None
    return event_hash(raw.headers, raw.data)


async def read_event_hashes(
    js: JetStreamContext, stream: str, subject: str, start: int, end: int
) -> AsyncIterator[tuple[int, bytes | None]]:
    """Yields ``(seq, event hash or None)`` for every sequence ``start..end`` of ``stream``, in order.

    Raises:
        AuditReadError: If the server cannot be read (other than "no message at this sequence").
    """
    expected = start
    try:
        async for msg in _messages(js, stream, subject, start, end):
            seq = msg.metadata.sequence.stream
            if seq < expected:
                continue
            while expected < min(seq, end + 1):  # not delivered: gone, unreadable, or a delivery hiccup
                yield expected, await _direct(js, stream, expected)
                expected += 1
            if seq > end:
                break
            yield seq, event_hash(msg.headers, msg.data)
            expected = seq + 1
        while expected <= end:
            yield expected, await _direct(js, stream, expected)
            expected += 1
    except (JetStreamError, TimeoutError, OSError) as exc:
        raise AuditReadError(f"could not read {stream} at sequence {expected}: {exc}") from exc


async def read_checkpoints(js: JetStreamContext, stream: str) -> list[StoredCheckpoint]:
    """Every checkpoint event of ``stream`` on AUDIT, in append order.

    Raises:
        AuditReadError: If AUDIT cannot be read.
    """
    subject = checkpoint_subject(stream)
    found: list[StoredCheckpoint] = []
    try:
        _, end = await stream_bounds(js, AUDIT_STREAM)
        if end == 0:
            return found
        async for msg in _messages(js, AUDIT_STREAM, subject, 1, end):
            found.append(_parse(msg.metadata.sequence.stream, msg.headers, msg.data))
    except (JetStreamError, TimeoutError, OSError) as exc:
        raise AuditReadError(f"could not read the checkpoints of {stream} from {AUDIT_STREAM}: {exc}") from exc
    return found


async def last_checkpoint(js: JetStreamContext, stream: str) -> StoredCheckpoint | None:
    """The last checkpoint event of ``stream`` (None when there is none yet)."""
    try:
        raw = await js.get_last_msg(AUDIT_STREAM, checkpoint_subject(stream))
    except NotFoundError:
        return None
    return _parse(int(raw.seq or 0), raw.headers, raw.data)


def _parse(audit_seq: int, headers: dict[str, str] | None, data: bytes | None) -> StoredCheckpoint:
    try:
        return StoredCheckpoint(audit_seq, Checkpoint.from_envelope(from_nats(headers, data)))
    except (EnvelopeError, CheckpointError, DecodeError, ValueError) as exc:
        return StoredCheckpoint(audit_seq, None, f"{type(exc).__name__}: {exc}")
