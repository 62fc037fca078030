"""LabelLog over JetStream: every label of a transaction on its LABELS subject, appended in order.

A transaction's labels share `fraud.labels.reported.<id>`; an append carries the expected last sequence of
that subject, so two labels reported at once are ordered by the server and each reporter classified its
label against exactly the history it follows. The event id (Nats-Msg-Id) derives from the transaction, the
position and the label's content: a retried publish of the same label dedupes, a different one never does.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC

from nats.js import JetStreamContext

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.once import RecordUnreadable, messages_after
from fraudshared.events.store import ConcurrencyError, EventStore
from fraudshared.features.labels import upcast
from fraudshared.telemetry import get_logger, inject_headers

LABELS = "LABELS"
KIND = events.LabelReported.DESCRIPTOR.name
log = get_logger(__name__)


class JetStreamLabelLog:
    """Implements services.ingest.service_layer.ports.LabelLog."""

    def __init__(self, js: JetStreamContext, store: EventStore, source: str = "/fraud/ingest") -> None:
        self._js = js
        self._store = store
        self._source = source

    async def history(self, transaction_id: str) -> tuple[list[events.LabelReported], int]:
        labels: list[events.LabelReported] = []
        last = 0
        subject = subjects.label_reported(transaction_id)
        async with contextlib.aclosing(messages_after(self._js, LABELS, subject, 0)) as messages:
            async for message in messages:
                last = message.seq
                try:
                    labels.append(upcast(message.payload(events.LabelReported)))
                except RecordUnreadable:  # readers quarantine and skip it; so does precedence
                    log.warning("LABELS sequence %d of a transaction's labels is unreadable; skipped", message.seq)
        return labels, last

    async def append(self, event: events.LabelReported, expected_last_seq: int) -> bool:
        content = f"{event.principal}|{event.label_source}|{int(event.is_fraud)}".encode()
        business_id = f"{event.transaction_id}:{expected_last_seq}:{hashlib.sha256(content).hexdigest()[:16]}"
        envelope = new_envelope(
            event,
            source=self._source,
            subject=event.transaction_id,
            event_id=event_id(KIND, business_id),
            time=event.reported_at.ToDatetime(tzinfo=UTC),
            schema_version=event.schema_version,
            traceparent=inject_headers({}).get("traceparent"),
        )
        try:
            await self._store.append(
                envelope,
                subject=subjects.label_reported(event.transaction_id),
                expected_last_subject_seq=expected_last_seq,
            )
        except ConcurrencyError:
            return False
        return True
