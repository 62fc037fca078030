"""Ports the ingest use cases depend on; adapters implement them, tests use small fakes."""

from __future__ import annotations

from typing import Protocol

from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.scoring.v1 import scoring_service_pb2 as scoring


class TransactionLog(Protocol):
    """Append-only log of the transaction-scoped events ingest owns."""

    async def append_received(self, event: events.TransactionReceived) -> events.TransactionReceived | None:
        """Append; return None when appended now, or the event recorded first under that id (any card)."""
        ...

    async def find_prediction(self, card_token: str, transaction_id: str) -> events.PredictionMade | None:
        """Return the recorded decision of a transaction, if one was made."""
        ...

    async def find_received(self, transaction_id: str) -> events.TransactionReceived | None:
        """Return the accepted transaction with this id, if any."""
        ...


class LabelLog(Protocol):
    """The labels of each transaction, all recorded, in order, on the transaction's subject."""

    async def history(self, transaction_id: str) -> tuple[list[events.LabelReported], int]:
        """The transaction's readable labels in stream order (upcast), and its subject's last sequence.

        The sequence is 0 when there is no message; unreadable ones count, so an append after them is checked.
        """
        ...

    async def append(self, event: events.LabelReported, expected_last_seq: int) -> bool:
        """Append unless the subject moved past `expected_last_seq` (False: read the history again).

        An identical retry of an append that landed is reported as appended (it is the same event).
        """
        ...


class ErasureLog(Protocol):
    """The PRIVACY stream: one SubjectErased per subject."""

    async def append_erased(self, event: privacy_events.SubjectErased) -> bool:
        """Append once per subject; False when an earlier request already recorded it."""
        ...


class FeaturesClient(Protocol):
    async def compute(
        self, request: features.ComputeFeaturesRequest, timeout: float
    ) -> features.ComputeFeaturesResponse:
        """Point-in-time feature vector of a transaction."""
        ...


class ScoringClient(Protocol):
    async def score(self, request: scoring.ScoreFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        """Decision for a feature vector."""
        ...


class DecisionPath(Protocol):
    async def decide(self, request: features.ComputeFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        """The transaction's features, then the decision on them (recorded once each, by transaction id)."""
        ...
