"""Append-once on a per-business-id subject, and read back what was recorded: the first event is the record.

Transaction-scoped events (TransactionReceived, FeatureVectorComputed, PredictionMade) are appended with
the expected last subject sequence 0 on a subject of their own, or checked on a `claim` filter over several
subjects (TransactionReceived: every partition's subject of its transaction id): the first append wins
forever, and a retry (within the duplicate window or long after it) reads the recorded event instead of
appending a second one.

Readers take the FIRST message on such a subject as the record. A later one can only be there if someone
appended without the guard; it is a conflict, never the record (`later_messages` lists them for the audit).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from fraudshared.events.envelope import Envelope, EnvelopeError, event_id, from_nats, new_envelope
from fraudshared.events.store import ConcurrencyError, EventStore
from fraudshared.telemetry import inject_headers

M = TypeVar("M", bound=Message)
MAX_CONFLICTS = 100  # later messages listed per subject: enough to show a forgery, bounded for the reader


class RecordUnreadable(Exception):
    """The first message on a once-only subject is not a readable event of the expected type."""

    def __init__(self, stream: str, seq: int, reason: str) -> None:
        super().__init__(f"{stream} sequence {seq} is unreadable: {reason}")
        self.stream, self.seq, self.reason = stream, seq, reason


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the stream holds it (maybe not an envelope at all)."""

    stream: str
    seq: int
    subject: str
    headers: dict[str, str] | None
    data: bytes | None

    @classmethod
    def of(cls, stream: str, raw: RawStreamMsg) -> StoredMessage:
        return cls(stream, int(raw.seq or 0), raw.subject or "", raw.headers, raw.data)

    def envelope(self) -> Envelope:
        """The stored envelope.

        Raises:
            RecordUnreadable: If the message is not a valid envelope.
        """
        try:
            return from_nats(self.headers, self.data)
        except EnvelopeError as exc:
            raise RecordUnreadable(self.stream, self.seq, str(exc)) from None

    def payload(self, message_type: type[M]) -> M:
        """The stored event parsed as `message_type`.

        Raises:
            RecordUnreadable: If it is not a valid envelope of that type.
        """
        try:
            return self.envelope().payload(message_type)
        except (EnvelopeError, DecodeError) as exc:
            raise RecordUnreadable(self.stream, self.seq, str(exc) or type(exc).__name__) from None


class OnceLog:
    """Append-once writer and first-event reader over one EventStore."""

    def __init__(self, js: JetStreamContext, store: EventStore, source: str) -> None:
        self._js = js
        self._store = store
        self._source = source

    async def append_once(
        self, message: M, *, business_id: str, subject: str, stream: str, time: datetime, claim: str | None = None
    ) -> M | None:
        """Append `message` unless it is already recorded; then return the recorded one.

        Same as `append_once_at` without the stream sequence.
        """
        recorded, _ = await self.append_once_at(
            message, business_id=business_id, subject=subject, stream=stream, time=time, claim=claim
        )
        return recorded

    async def append_once_at(
        self, message: M, *, business_id: str, subject: str, stream: str, time: datetime, claim: str | None = None
    ) -> tuple[M | None, int]:
        """Append `message` unless `claim` (default `subject`) already holds an event; then return that one.

        The check is the publish's expected-last-subject-sequence header, evaluated by the server on `claim`
        (wildcards allowed): no extra round trip on the path that appends.

        Args:
            message: Protobuf payload with a `schema_version` field.
            business_id: Id the event id derives from (e.g. the transaction id).
            subject: The event's own subject.
            stream: Stream that captures `subject` (for the read-back).
            time: Business time of the event.
            claim: Subject filter that may hold one event in all (e.g. ``fraud.tx.received.*.<id>``).

        Returns:
            (None, sequence) when appended now; otherwise (the first event recorded on `claim`, its sequence).

        Raises:
            RecordUnreadable: If the event recorded first cannot be read as `message`'s type.
        """
        kind = message.DESCRIPTOR.name
        envelope = new_envelope(
            message,
            source=self._source,
            subject=business_id,
            event_id=event_id(kind, business_id),
            time=time,
            schema_version=max(1, int(getattr(message, "schema_version", 1))),
            traceparent=inject_headers({}).get("traceparent"),
        )
        guarded = claim or subject
        try:
            result = await self._store.append(
                envelope, subject=subject, expected_last_subject_seq=0, expected_seq_subject=claim
            )
        except ConcurrencyError:
            return await self.find_at(stream, guarded, type(message))
        if result.duplicate:
            return await self.find_at(stream, guarded, type(message))
        return None, result.seq

    async def find(self, stream: str, subject: str, message_type: type[M]) -> M | None:
        """The first event on `subject` (wildcards allowed) parsed as `message_type`, or None."""
        found, _ = await self.find_at(stream, subject, message_type)
        return found

    async def find_at(self, stream: str, subject: str, message_type: type[M]) -> tuple[M | None, int]:
        """The first event on `subject` (wildcards allowed) with its stream sequence, or (None, 0).

        Raises:
            RecordUnreadable: If that event cannot be read as `message_type`.
        """
        first = await first_message(self._js, stream, subject)
        if first is None:
            return None, 0
        return first.payload(message_type), first.seq


async def first_message(js: JetStreamContext, stream: str, subject: str) -> StoredMessage | None:
    """The first stored message on `subject` (wildcards allowed): one JetStream message get, next-by-subject."""
    try:
        return StoredMessage.of(stream, await js.get_msg(stream, seq=1, subject=subject, next=True))
    except NotFoundError:
        return None


async def messages_after(
    js: JetStreamContext, stream: str, subject: str, after_seq: int
) -> AsyncGenerator[StoredMessage, None]:
    """Messages on `subject` (wildcards allowed) after `after_seq`, in stream order: one message get each.

    Wrap it in ``contextlib.aclosing`` when stopping early.
    """
    seq = after_seq
    while True:
        try:
            message = StoredMessage.of(stream, await js.get_msg(stream, seq=seq + 1, subject=subject, next=True))
        except NotFoundError:
            return
        yield message
        seq = max(seq + 1, message.seq)  # always moves on


async def later_messages(
    js: JetStreamContext, stream: str, subject: str, after_seq: int, limit: int = MAX_CONFLICTS
) -> list[StoredMessage]:
    """Messages on `subject` after `after_seq`, in stream order, at most `limit` (one get each).

    On a once-only subject these are conflicts: the record is the first message.
    """
    found: list[StoredMessage] = []
    if limit <= 0:
        return found
    async with contextlib.aclosing(messages_after(js, stream, subject, after_seq)) as messages:
        async for message in messages:
            found.append(message)
            if len(found) == limit:
                break
    return found
