"""TransactionLog over JetStream: TransactionReceived appended once per transaction (labels: label_log.py).

A transaction id is claimed once across all partitions: TransactionReceived is appended on its card's
partition subject with the expected last sequence 0 checked on `fraud.tx.received.*.<id>` (one publish, no
extra round trip). Reads take the first event on a subject as the record (`OnceLog`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.once import OnceLog, RecordUnreadable
from services.ingest.domain.errors import TransactionIdReused, UnknownTransaction

TRANSACTIONS = "TRANSACTIONS"
PREDICTIONS = "PREDICTIONS"


class JetStreamTransactionLog:
    """Implements services.ingest.service_layer.ports.TransactionLog."""

    def __init__(self, once: OnceLog) -> None:
        self._once = once

    async def append_received(self, event: events.TransactionReceived) -> events.TransactionReceived | None:
        with _readable(event.transaction_id):
            return await self._once.append_once(
                event,
                business_id=event.transaction_id,
                subject=subjects.transaction_received(subjects.card_key(event), event.transaction_id),
                stream=TRANSACTIONS,
                time=event.event_time.ToDatetime(tzinfo=UTC),
                claim=subjects.transaction_received_any(event.transaction_id),
            )

    async def find_prediction(self, card_token: str, transaction_id: str) -> events.PredictionMade | None:
        subject = subjects.prediction_made(card_token, transaction_id)
        with _readable(transaction_id):
            return await self._once.find(PREDICTIONS, subject, events.PredictionMade)

    async def find_received(self, transaction_id: str) -> events.TransactionReceived | None:
        subject = subjects.transaction_received_any(transaction_id)
        try:
            return await self._once.find(TRANSACTIONS, subject, events.TransactionReceived)
        except RecordUnreadable as exc:  # nothing a label could be attached to
            raise UnknownTransaction(
                f"transaction_id {transaction_id}: its recorded event cannot be read ({exc})"
            ) from exc


@contextmanager
def _readable(transaction_id: str) -> Iterator[None]:
    """An id whose recorded event cannot be read stays taken: the caller is told so, never a parse error."""
    try:
        yield
    except RecordUnreadable as exc:
        raise TransactionIdReused(
            f"transaction_id {transaction_id} is already recorded ({exc.stream} sequence {exc.seq}), "
            "but that event cannot be read; use a new transaction_id"
        ) from exc
