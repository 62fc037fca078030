"""FeatureLog over JetStream: FeatureVectorComputed and LabelApplied appended once each, replayed in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.envelope import UnexpectedType
from fraudshared.events.once import OnceLog
from fraudshared.events.quarantine import Quarantine
from fraudshared.events.store import EventStore
from fraudshared.features.recorded import COMPUTED_TYPE, LABEL_TYPE, Recorded, parse

FEATURES = "FEATURES"
RECORDED_TYPES = (COMPUTED_TYPE, LABEL_TYPE)


class JetStreamFeatureLog:
    """Implements services.features.service_layer.ports.FeatureLog."""

    def __init__(
        self, once: OnceLog, store: EventStore, partitions: list[int] | None = None, *, reader: str = "features"
    ) -> None:
        self._once = once
        self._store = store
        self._partitions = None if partitions is None else {str(p) for p in partitions}
        self._quarantine = Quarantine(store, reader)  # what replay cannot read is recorded and skipped

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
        events = self._store.read_subject(
            FEATURES, subjects.FEATURES_ALL, from_seq, on_unreadable=self._quarantine.unreadable
        )
        async for stored in events:
            parts = stored.subject.split(".")
            if self._partitions is not None and len(parts) > 3 and parts[3] not in self._partitions:
                continue  # another owner's partition
            try:
                if stored.envelope.type not in RECORDED_TYPES:
                    raise UnexpectedType(f"{stored.envelope.type!r} is not a FEATURES event")
                event = parse(stored.envelope)
            except Exception as exc:  # a wrong type or a payload that does not parse: recorded, skipped
                await self._quarantine.failed(FEATURES, stored.seq, stored.subject, stored.envelope, exc)
                continue
            if event is not None:
                yield stored.seq, event
