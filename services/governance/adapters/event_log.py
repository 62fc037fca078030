"""The model event log over the shared JetStream event store: one subject per model in stream MODELS."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from google.protobuf.message import Message
from nats.js import JetStreamContext

from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import ConcurrencyError, EventStore, StoredEvent
from fraudshared.events.upcasting import UpcasterRegistry
from fraudshared.telemetry import inject_headers
from services.governance.domain import events as ev
from services.governance.domain.errors import ConcurrentChange
from services.governance.service_layer.ports import History

MODELS_STREAM = "MODELS"
SOURCE = "/fraud/governance"
log = logging.getLogger(__name__)
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
        self, store: EventStore, js: JetStreamContext, *, stream: str = MODELS_STREAM, source: str = SOURCE
    ) -> None:
        """Wraps the shared event store (``js`` answers the stream's last sequence)."""
        self._store = store
        self._js = js
        self._stream = stream
        self._source = source

    async def load(self, model_name: str) -> History:
        history: History = []
        async for stored in self._store.read_subject(self._stream, subjects.model_events(model_name)):
            event = self._decode(stored)
            if event is not None:
                history.append((event, stored.seq))
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
        async for stored in self._store.read_subject(self._stream, subjects.MODELS_ALL, after_seq + 1):
            event = self._decode(stored)
            if event is not None:
                yield event, stored.seq

    async def last_seq(self) -> int:
        info = await self._js.stream_info(self._stream)
        return int(info.state.last_seq or 0)

    def _decode(self, stored: StoredEvent) -> Message | None:
        try:
            envelope = UPCASTERS.upcast(stored.envelope)
            return ev.decode(envelope.type, envelope.data)
        except (ev.UnknownEventType, ValueError) as exc:
            log.warning("skipping stream %s seq %d on %s: %s", self._stream, stored.seq, stored.subject, exc)
            return None


def _event_time(event: Message) -> datetime:
    for name in _TIME_FIELDS:
        if event.DESCRIPTOR.fields_by_name.get(name) is not None and event.HasField(name):
            return getattr(event, name).ToDatetime(UTC)
    raise ValueError(f"{type(event).__name__} has no time")
