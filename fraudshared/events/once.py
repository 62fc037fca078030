"""Append-once on a per-business-id subject, and read back what was recorded.

Transaction-scoped events (TransactionReceived, FeatureVectorComputed, PredictionMade) are appended with
the expected last subject sequence 0 on a subject of their own: the first append wins forever, and a retry
(within the duplicate window or long after it) reads the recorded event instead of appending a second one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fraudshared.events.envelope import event_id, from_nats, new_envelope
from fraudshared.events.store import ConcurrencyError, EventStore
from fraudshared.telemetry import inject_headers

M = TypeVar("M", bound=Message)


class OnceLog:
    """Append-once writer and last-event reader over one EventStore."""

    def __init__(self, js: JetStreamContext, store: EventStore, source: str) -> None:
        self._js = js
        self._store = store
        self._source = source

    async def append_once(self, message: M, *, business_id: str, subject: str, stream: str, time: datetime) -> M | None:
        """Append `message` unless the subject already holds an event; then return the recorded one.

        Same as `append_once_at` without the stream sequence.
        """
        recorded, _ = await self.append_once_at(
            message, business_id=business_id, subject=subject, stream=stream, time=time
        )
        return recorded

    async def append_once_at(
        self, message: M, *, business_id: str, subject: str, stream: str, time: datetime
    ) -> tuple[M | None, int]:
        """Append `message` unless the subject already holds an event; then return the recorded one.

        Args:
            message: Protobuf payload with a `schema_version` field.
            business_id: Id the event id derives from (e.g. the transaction id).
            subject: The event's own subject (one event per subject).
            stream: Stream that captures `subject` (for the read-back).
            time: Business time of the event.

        Returns:
            (None, sequence) when appended now; otherwise (the event already stored, its sequence).
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
        try:
            result = await self._store.append(envelope, subject=subject, expected_last_subject_seq=0)
        except ConcurrencyError:
            return await self.find_at(stream, subject, type(message))
        if result.duplicate:
            return await self.find_at(stream, subject, type(message))
        return None, result.seq

    async def find(self, stream: str, subject: str, message_type: type[M]) -> M | None:
        """The last event on `subject` (wildcards allowed) parsed as `message_type`, or None."""
        found, _ = await self.find_at(stream, subject, message_type)
        return found

    async def find_at(self, stream: str, subject: str, message_type: type[M]) -> tuple[M | None, int]:
        """The last event on `subject` with its stream sequence, or (None, 0)."""
        try:
            raw = await self._js.get_last_msg(stream, subject)
        except NotFoundError:
            return None, 0
        return from_nats(raw.headers, raw.data).payload(message_type), int(raw.seq or 0)
