"""FeatureLog over JetStream: FeatureVectorComputed and LabelApplied appended once each, replayed in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.once import OnceLog
from fraudshared.events.store import EventStore
from fraudshared.features.recorded import Recorded, parse

FEATURES = "FEATURES"


class JetStreamFeatureLog:
    """Implements services.features.service_layer.ports.FeatureLog."""

    def __init__(self, once: OnceLog, store: EventStore, partitions: list[int] | None = None) -> None:
        self._once = once
        self._store = store
        self._partitions = None if partitions is None else {str(p) for p in partitions}

    async def append_computed(
        self, event: events.FeatureVectorComputed
    ) -> tuple[events.FeatureVectorComputed | None, int]:
        return await self._once.append_once_at(
            event,
            business_id=event.transaction_id,
            subject=subjects.feature_vector_computed(subjects.card_key(event), event.transaction_id),
            stream=FEATURES,
            time=event.event_time.ToDatetime(tzinfo=UTC),
        )

    async def append_label(self, event: events.LabelApplied) -> tuple[events.LabelApplied | None, int]:
        return await self._once.append_once_at(
            event,
            business_id=f"label:{event.transaction_id}",
            subject=subjects.label_applied(subjects.card_key(event), event.transaction_id),
            stream=FEATURES,
            time=event.reported_at.ToDatetime(tzinfo=UTC),
        )

    async def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, Recorded]]:
        """Owned partitions' events from `from_seq`, in stream order (one pass; others' events are skipped).

        One pass in stream order, not one read per partition: the state's last applied sequence only ever
        grows, which is what lets a restart skip what a snapshot already holds.
        """
        async for stored in self._store.read_subject(FEATURES, subjects.FEATURES_ALL, from_seq):
            if self._partitions is None or stored.subject.split(".")[3] in self._partitions:
                event = parse(stored.envelope)
                if event is not None:
                    yield stored.seq, event
