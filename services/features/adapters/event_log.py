"""FeatureLog over JetStream: FeatureVectorComputed appended once per transaction, replayed in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.once import OnceLog
from fraudshared.events.store import EventStore

FEATURES = "FEATURES"
COMPUTED_ALL = "fraud.features.computed.>"


class JetStreamFeatureLog:
    """Implements services.features.service_layer.ports.FeatureLog."""

    def __init__(self, once: OnceLog, store: EventStore) -> None:
        self._once = once
        self._store = store

    async def append_computed(self, event: events.FeatureVectorComputed) -> events.FeatureVectorComputed | None:
        return await self._once.append_once(
            event,
            business_id=event.transaction_id,
            subject=subjects.feature_vector_computed(event.card_token, event.transaction_id),
            stream=FEATURES,
            time=event.event_time.ToDatetime(tzinfo=UTC),
        )

    async def replay(self) -> AsyncIterator[events.FeatureVectorComputed]:
        async for stored in self._store.read_subject(FEATURES, COMPUTED_ALL):
            yield stored.envelope.payload(events.FeatureVectorComputed)
