"""TransactionLog over JetStream: TransactionReceived and LabelReported appended once per transaction."""

from __future__ import annotations

from datetime import UTC

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.once import OnceLog

TRANSACTIONS = "TRANSACTIONS"
PREDICTIONS = "PREDICTIONS"
LABELS = "LABELS"


class JetStreamTransactionLog:
    """Implements services.ingest.service_layer.ports.TransactionLog."""

    def __init__(self, once: OnceLog) -> None:
        self._once = once

    async def append_received(self, event: events.TransactionReceived) -> events.TransactionReceived | None:
        return await self._once.append_once(
            event,
            business_id=event.transaction_id,
            subject=subjects.transaction_received(subjects.card_key(event), event.transaction_id),
            stream=TRANSACTIONS,
            time=event.event_time.ToDatetime(tzinfo=UTC),
        )

    async def find_prediction(self, card_token: str, transaction_id: str) -> events.PredictionMade | None:
        subject = subjects.prediction_made(card_token, transaction_id)
        return await self._once.find(PREDICTIONS, subject, events.PredictionMade)

    async def find_received(self, transaction_id: str) -> events.TransactionReceived | None:
        subject = f"fraud.tx.received.*.{transaction_id}"
        return await self._once.find(TRANSACTIONS, subject, events.TransactionReceived)

    async def append_label(self, event: events.LabelReported) -> bool:
        recorded = await self._once.append_once(
            event,
            business_id=event.transaction_id,
            subject=subjects.label_reported(event.transaction_id),
            stream=LABELS,
            time=event.reported_at.ToDatetime(tzinfo=UTC),
        )
        return recorded is None
