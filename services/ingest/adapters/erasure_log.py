"""ErasureLog over JetStream: one SubjectErased per subject on PRIVACY (append-once)."""

from __future__ import annotations

from datetime import UTC

from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraudshared import subjects
from fraudshared.events.once import OnceLog, RecordUnreadable

PRIVACY = "PRIVACY"


class JetStreamErasureLog:
    """Implements services.ingest.service_layer.ports.ErasureLog."""

    def __init__(self, once: OnceLog) -> None:
        self._once = once

    async def append_erased(self, event: privacy_events.SubjectErased) -> bool:
        try:
            recorded = await self._once.append_once(
                event,
                business_id=event.subject_id,
                subject=subjects.subject_erased(event.subject_id),
                stream=PRIVACY,
                time=event.erased_at.ToDatetime(tzinfo=UTC),
            )
        except RecordUnreadable:  # something is recorded first there; the erasure itself still goes ahead
            return False
        return recorded is None
