"""The model event log over the shared JetStream event store: one subject per model in stream MODELS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message
from nats.js import JetStreamContext

from fraud.events.v1 import quarantine_events_pb2 as qpb
from fraudshared import subjects
from fraudshared.events.envelope import UnexpectedType, event_id, new_envelope
from fraudshared.events.quarantine import Quarantine, reason_of
from fraudshared.events.store import ConcurrencyError, EventStore, UnreadableEvent
from fraudshared.events.upcasting import UpcasterRegistry
from fraudshared.telemetry import inject_headers
from services.governance.domain import events as ev
from services.governance.domain.errors import ConcurrentChange
from services.governance.service_layer.ports import History

MODELS_STREAM = "MODELS"
SOURCE = "/fraud/governance"
# Old payloads are lifted to the current schema version on the way in (none yet: every event is v1).
UPCASTERS = UpcasterRegistry(current={name: ev.SCHEMA_VERSION for name in ev.EVENT_TYPES})
_TIME_FIELDS = (
    "registered_at",
    "validated_at",
    "approved_at",
    "deployed_at",
    "promoted_at",
    "rolled_back_at",
    "retired_at",
)


class JetStreamModelEvents:
    """Implements `services.governance.service_layer.ports.ModelEventLog`."""

    def __init__(
        self,
        store: EventStore,
        js: JetStreamContext,
        *,
        stream: str = MODELS_STREAM,
        source: str = SOURCE,
        reader: str = "governance",
    ) -> None:
        """Wraps the shared event store (``js`` answers the stream's last sequence).

        An event that does not decode is quarantined under ``reader`` (recorded once, counted, logged) and
        skipped, so neither the aggregate nor the registry projection ever stops on one. Reads yield a
        `skipped` record in its place, so its sequence still counts (a model's next expected sequence, the
        registry's position).
        """
        self._store = store
        self._js = js
        self._stream = stream
        self._source = source
        self._quarantine = Quarantine(store, reader)

    async def load(self, model_name: str) -> History:
        history: History = []
        async for event, seq in self._read(subjects.model_events(model_name), 1):
            history.append((event, seq))
        return history

    async def append(self, event: Message, *, expected_last_seq: int | None) -> int:
        model_name: str = getattr(event, "model_name")  # noqa: B009 - every model event has one
        subject = subjects.model_events(model_name)
        envelope = new_envelope(
            event,
            source=self._source,
            subject=f"{model_name}@{ev.version_of(event)}",
            event_id=event_id(type(event).__name__, ev.business_id(event)),
            time=_event_time(event),
            schema_version=ev.SCHEMA_VERSION,
            traceparent=inject_headers().get("traceparent"),
        )
        try:
            result = await self._store.append(envelope, subject=subject, expected_last_subject_seq=expected_last_seq)
        except ConcurrencyError as exc:
            raise ConcurrentChange(str(exc)) from exc
        return result.seq

    async def read_all(self, after_seq: int) -> AsyncIterator[tuple[Message, int]]:
        async for pair in self._read(subjects.MODELS_ALL, after_seq + 1):
            yield pair

    async def _read(self, subject: str, from_seq: int) -> AsyncIterator[tuple[Message, int]]:
        """The events on ``subject`` in stream order; each one skipped is quarantined and yields `skipped`."""
        quarantine = self._quarantine
        unread: list[tuple[Message, int]] = []  # skipped by the store's read, yielded in their place

        async def unreadable(event: UnreadableEvent) -> None:
            await quarantine.unreadable(event)
            reason = qpb.QUARANTINE_REASON_UNREADABLE_ENVELOPE
            unread.append((skipped(quarantine.reader, event.stream, event.seq, reason), event.seq))

        async for stored in self._store.read_subject(self._stream, subject, from_seq, on_unreadable=unreadable):
            for pair in unread:  # met before this one
                yield pair
            unread.clear()
            try:
                envelope = UPCASTERS.upcast(stored.envelope)
                event = ev.decode(envelope.type, envelope.data)
            except (ValueError, DecodeError) as exc:  # UnknownEventType and UpcastError are ValueErrors
                error = UnexpectedType(str(exc)) if isinstance(exc, ev.UnknownEventType) else exc
                await quarantine.failed(self._stream, stored.seq, stored.subject, stored.envelope, error)
                yield skipped(quarantine.reader, self._stream, stored.seq, reason_of(error)), stored.seq
                continue
            yield event, stored.seq
        for pair in unread:  # at the end of what was read
            yield pair

    async def last_seq(self) -> int:
        info = await self._js.stream_info(self._stream)
        return int(info.state.last_seq or 0)


def skipped(reader: str, stream: str, seq: int, reason: qpb.QuarantineReason.ValueType) -> qpb.EventQuarantined:
    """What the log yields in place of an event it quarantined: where it is and why, nothing to fold.

    It keeps the event's sequence in the reads: a model's last sequence (the next append's expected one) and
    the registry's position count it, and neither the aggregate nor the projection has a case for it.
    """
    return qpb.EventQuarantined(schema_version=1, reader=reader, stream=stream, stream_sequence=seq, reason=reason)


def _event_time(event: Message) -> datetime:
    for name in _TIME_FIELDS:
        if event.DESCRIPTOR.fields_by_name.get(name) is not None and event.HasField(name):
            return getattr(event, name).ToDatetime(UTC)
    raise ValueError(f"{type(event).__name__} has no time")
