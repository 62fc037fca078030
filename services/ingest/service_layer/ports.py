"""Ports the ingest use cases depend on; adapters implement them, tests use small fakes."""

from __future__ import annotations

from typing import Protocol

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

    async def append_label(self, event: events.LabelReported) -> bool:
        """Append a label; return False when the same label was already recorded."""
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
