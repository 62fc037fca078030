"""Compute a transaction's point-in-time feature vector, record it, then fold it into the state.

State is the fold of the FEATURES stream in order: FeatureVectorComputed (each carries the transaction's
card, terminal, amount, location and event time) and LabelApplied (a delayed label, recorded where this
owner folded it, so a replay sees it at the same point). A transaction may be labelled several times: a
label is applied only when it takes effect by precedence (`fraudshared.features.labels`, against the label
in force, which the fold of LabelApplied rebuilds), so a correction reaches the state and an outranked
label does not. A restart loads the latest snapshot (state + the
last stream sequence it covers) and replays the FEATURES stream after that sequence, so it reaches the same
state.

One lock per instance serialises compute -> send -> apply, so the recorded order is the order the state saw
(what lets a replay reproduce every vector; terminal state is shared across the cards of a partition). The
append is pipelined: it is sent inside the lock (one connection keeps publish order) but its ack is awaited
outside it, so the next transaction does not wait for this one's round trip. If an ack fails, or reveals
that another vector was recorded for the transaction, the optimistic fold is void: the state is rebuilt
from the log before the next transaction is computed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, FeatureEngine, Transaction
from fraudshared.features import labels as precedence
from fraudshared.features import recorded as recorded_events
from fraudshared.subjects import card_key
from services.features.service_layer.ports import FeatureLog, SnapshotStore

SCHEMA_VERSION = 1
RECENT_VECTORS = 100_000  # answers to retries without a log read; older retries fall back to the log
Append = asyncio.Future[tuple[Any, int]]


@dataclass
class FeatureState:
    """The engine, the last stream sequence folded into it, and recent vectors for cheap retries."""

    engine: FeatureEngine = field(default_factory=FeatureEngine)
    recent: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_seq: int = 0
    labels_seq: int = 0  # the newest LABELS stream sequence folded (where a restarted label follower resumes)
    # The label in force per labelled transaction (what a later label must match or outrank).
    labels: dict[str, precedence.LabelFact] = field(default_factory=dict)
    applied: int = 0
    pending: set[Append] = field(default_factory=set)
    stale: bool = False  # an optimistic fold turned out wrong: rebuild before the next computation
    # Where a rebuild starts from (set by `rebuild`): the snapshot store and the partitions it must match.
    snapshots: SnapshotStore | None = None
    partitions: list[int] | None = None

    def acknowledged(self, append: Append) -> None:
        """Done-callback of a pipelined append: advance last_seq, or void the optimistic fold."""
        self.pending.discard(append)
        if append.cancelled() or append.exception() is not None:
            self.stale = True
            return
        recorded, seq = append.result()
        if recorded is not None:
            self.stale = True  # recorded by an earlier attempt or another owner: this fold was a second one
        self.last_seq = max(self.last_seq, seq)

    async def settle(self) -> None:
        """Wait for every append in flight (before a snapshot or a rebuild)."""
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)

    def remember(self, transaction_id: str, values: list[float]) -> None:
        self.recent[transaction_id] = values
        if len(self.recent) > RECENT_VECTORS:
            self.recent.popitem(last=False)

    def fold(self, seq: int, event: recorded_events.Recorded) -> None:
        """Apply one recorded event; events at or below `last_seq` are already in the state."""
        if seq and seq <= self.last_seq:
            return
        recorded_events.fold(self.engine, event)
        if isinstance(event, events.LabelApplied):
            self.labels_seq = max(self.labels_seq, event.labels_sequence)
            self.labels[event.transaction_id] = precedence.fact_of(event)
        else:
            self.remember(event.transaction_id, list(event.values))
        self.last_seq = max(self.last_seq, seq)
        self.applied += 1

    def track(self, append: Append) -> None:
        self.pending.add(append)
        append.add_done_callback(self.acknowledged)  # before any waiter on it sees it done (snapshots)

    def snapshot(self, partitions: list[int]) -> dict[str, Any]:
        return {
            "last_seq": self.last_seq,
            "labels_seq": self.labels_seq,
            "partitions": partitions,
            "engine": self.engine.to_dict(),
            "labels": {tx: [f.is_fraud, f.source, f.principal] for tx, f in self.labels.items()},
        }

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> FeatureState:
        return cls(
            engine=FeatureEngine.from_dict(snapshot["engine"]),
            last_seq=int(snapshot["last_seq"]),
            labels_seq=int(snapshot.get("labels_seq", 0)),
            # A snapshot from before label precedence has no "labels": KeyError, so the log is replayed.
            labels={tx: precedence.LabelFact(bool(f), int(s), str(p)) for tx, (f, s, p) in snapshot["labels"].items()},
        )


async def rebuild(
    log: FeatureLog, snapshots: SnapshotStore | None = None, partitions: list[int] | None = None
) -> FeatureState:
    """Latest usable snapshot (same partitions and feature set) plus the events recorded after it."""
    state = FeatureState()
    snapshot = snapshots.load() if snapshots is not None else None
    if snapshot is not None and snapshot.get("partitions") == partitions:
        try:
            state = FeatureState.from_snapshot(snapshot)
        except (KeyError, ValueError, TypeError):  # another feature-set version or damaged content: replay all
            state = FeatureState()
    async for seq, event in log.replay(state.last_seq + 1):
        state.fold(seq, event)
    state.snapshots, state.partitions = snapshots, partitions
    return state


def _response(values: list[float]) -> features.ComputeFeaturesResponse:
    return features.ComputeFeaturesResponse(
        feature_set_version=FEATURE_SET_VERSION, feature_names=FEATURE_NAMES, values=values
    )


async def compute_features(
    request: features.ComputeFeaturesRequest, state: FeatureState, log: FeatureLog
) -> features.ComputeFeaturesResponse:
    """Point-in-time vector of the transaction; a retry gets the vector recorded the first time."""
    async with state.lock:
        if state.stale:
            await _reset(state, log)
        known = state.recent.get(request.transaction_id)
        if known is not None:
            return _response(known)
        tx = Transaction(
            tx_id=request.transaction_id,
            event_time_us=request.event_time.ToMicroseconds(),
            card_token=card_key(request),
            terminal_id=request.terminal_id,
            amount_minor=request.amount.amount_minor,
            location=recorded_events.location_of(request),
        )
        event = events.FeatureVectorComputed(
            schema_version=SCHEMA_VERSION,
            transaction_id=tx.tx_id,
            card_token=request.card_token,
            subject_id=request.subject_id,
            feature_set_version=FEATURE_SET_VERSION,
            values=state.engine.values_for(tx),
            event_time=request.event_time,
            terminal_id=tx.terminal_id,
            amount=request.amount,
            terminal_location=request.terminal_location if request.HasField("terminal_location") else None,
        )
        append = asyncio.ensure_future(log.append_computed(event))  # sent before any later transaction's
        state.track(append)
        state.fold(0, event)  # optimistic: voided (state marked stale) if the append says otherwise
    recorded, _ = await asyncio.shield(append)
    return _response(list((recorded or event).values))


async def apply_label(label: events.LabelReported, labels_seq: int, state: FeatureState, log: FeatureLog) -> bool:
    """Fold a delayed label into terminal and card state if it takes effect, and record where.

    Returns False when it was already folded or does not take effect (outranked by the label in force).
    """
    label = precedence.upcast(label)
    async with state.lock:
        if state.stale:
            await _reset(state, log)
        if labels_seq <= state.labels_seq:
            return False
        _, outcome = precedence.apply(state.labels.get(label.transaction_id), precedence.fact_of(label))
        if not outcome.takes_effect:
            state.labels_seq = labels_seq  # decided again the same way if a restart reads it again
            return False
        event = events.LabelApplied(
            schema_version=precedence.LABEL_SCHEMA_VERSION,
            transaction_id=label.transaction_id,
            card_token=label.card_token,
            subject_id=label.subject_id,
            terminal_id=label.terminal_id,
            event_time=label.event_time,
            is_fraud=label.is_fraud,
            reported_at=label.reported_at,
            labels_sequence=labels_seq,
            label_source=label.label_source,
            principal=label.principal,
        )
        append = asyncio.ensure_future(log.append_label(event))
        state.track(append)
        state.fold(0, event)
    await asyncio.shield(append)
    return True


async def _reset(state: FeatureState, log: FeatureLog) -> None:
    """Replace the state by a rebuild (called under the lock, after a voided fold).

    It starts from the latest snapshot, which only ever holds acknowledged events (snapshots are not taken
    while the state is stale), and replays the log after it.
    """
    await state.settle()
    fresh = await rebuild(log, state.snapshots, state.partitions)
    state.engine, state.recent, state.last_seq, state.labels_seq, state.labels, state.applied = (
        fresh.engine,
        fresh.recent,
        fresh.last_seq,
        fresh.labels_seq,
        fresh.labels,
        fresh.applied,
    )
    state.stale = False
