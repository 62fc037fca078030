"""Compute a transaction's point-in-time feature vector, record it, then fold it into the state.

State is the fold of FeatureVectorComputed events in stream order (each carries the transaction's card,
terminal, amount and event time), so a restart replays the FEATURES stream and reaches the same state.
One lock per instance serialises compute -> append -> apply: the recorded order is the order the state
saw, which is what makes a replay reproduce every vector (terminal state is shared across cards).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, FeatureEngine, Transaction
from services.features.service_layer.ports import FeatureLog

SCHEMA_VERSION = 1
RECENT_VECTORS = 100_000  # answers to retries without a log read; older retries fall back to the log


def as_transaction(event: events.FeatureVectorComputed) -> Transaction:
    return Transaction(
        tx_id=event.transaction_id,
        event_time_us=event.event_time.ToMicroseconds(),
        card_token=event.card_token,
        terminal_id=event.terminal_id,
        amount_minor=event.amount.amount_minor,
    )


@dataclass
class FeatureState:
    """The engine plus the ids already folded in (bounded memory of recent vectors)."""

    engine: FeatureEngine = field(default_factory=FeatureEngine)
    recent: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    applied: int = 0

    def remember(self, transaction_id: str, values: list[float]) -> None:
        self.recent[transaction_id] = values
        if len(self.recent) > RECENT_VECTORS:
            self.recent.popitem(last=False)

    def fold(self, event: events.FeatureVectorComputed) -> None:
        self.engine.apply(as_transaction(event))
        self.remember(event.transaction_id, list(event.values))
        self.applied += 1


async def rebuild(state: FeatureState, log: FeatureLog) -> int:
    """Fold every recorded event into a fresh state; returns how many were applied."""
    async for event in log.replay():
        state.fold(event)
    return state.applied


def _response(values: list[float]) -> features.ComputeFeaturesResponse:
    return features.ComputeFeaturesResponse(
        feature_set_version=FEATURE_SET_VERSION, feature_names=FEATURE_NAMES, values=values
    )


async def compute_features(
    request: features.ComputeFeaturesRequest, state: FeatureState, log: FeatureLog
) -> features.ComputeFeaturesResponse:
    """Point-in-time vector of the transaction; a retry gets the vector recorded the first time."""
    async with state.lock:
        known = state.recent.get(request.transaction_id)
        if known is not None:
            return _response(known)
        tx = Transaction(
            tx_id=request.transaction_id,
            event_time_us=request.event_time.ToMicroseconds(),
            card_token=request.card_token,
            terminal_id=request.terminal_id,
            amount_minor=request.amount.amount_minor,
        )
        values = [float(v) for v in state.engine.vector_for(tx)]
        event = events.FeatureVectorComputed(
            schema_version=SCHEMA_VERSION,
            transaction_id=tx.tx_id,
            card_token=tx.card_token,
            feature_set_version=FEATURE_SET_VERSION,
            values=values,
            event_time=request.event_time,
            terminal_id=tx.terminal_id,
            amount=request.amount,
        )
        recorded = await log.append_computed(event)
        if recorded is not None:
            # Appended by an earlier attempt that this instance has not folded (e.g. another owner's).
            state.fold(recorded)
            return _response(list(recorded.values))
        state.fold(event)
        return _response(list(event.values))
