"""Features fold labels by precedence: a correction reaches the state, an outranked label does not, and a
restart (replay of the recorded events, or a snapshot plus the tail) reaches the same label in force."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared.features.labels import UNKNOWN_PRINCIPAL, LabelFact
from fraudshared.features.recorded import Recorded
from services.features.service_layer.handlers import FeatureState, apply_label, rebuild

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
ANALYST, CUSTOMER, CHARGEBACK = (
    events.LABEL_SOURCE_ANALYST,
    events.LABEL_SOURCE_CUSTOMER_CONFIRMED,
    events.LABEL_SOURCE_CHARGEBACK,
)


class FakeFeatureLog:
    """The FEATURES stream of one owner: LabelApplied appended once per LABELS sequence."""

    def __init__(self) -> None:
        self.events: list[Recorded] = []

    async def append_computed(self, event: events.FeatureVectorComputed) -> tuple[Any, int]:
        self.events.append(event)
        return None, len(self.events)

    async def append_label(self, event: events.LabelApplied) -> tuple[events.LabelApplied | None, int]:
        for seq, recorded in enumerate(self.events, start=1):
            if isinstance(recorded, events.LabelApplied) and recorded.labels_sequence == event.labels_sequence:
                return recorded, seq
        self.events.append(event)
        return None, len(self.events)

    async def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, Recorded]]:
        for seq, event in enumerate(list(self.events), start=1):
            if seq >= from_seq:
                yield seq, event


class MemorySnapshots:
    def __init__(self, saved: dict[str, Any] | None = None) -> None:
        self.saved = saved

    def load(self) -> dict[str, Any] | None:
        return self.saved

    def save(self, snapshot: dict[str, Any]) -> None:
        self.saved = snapshot


def reported(is_fraud: bool, source: int, principal: str, tx: str = "t1", version: int = 2) -> events.LabelReported:
    label = events.LabelReported(
        schema_version=version,
        transaction_id=tx,
        is_fraud=is_fraud,
        label_source=source if version >= 2 else 0,
        principal=principal if version >= 2 else "",
        card_token="ct_a",
        terminal_id="T1",
    )
    label.event_time.FromDatetime(T0)
    label.reported_at.FromDatetime(T0 + timedelta(days=1))
    return label


def frauds(state: FeatureState) -> set[str]:
    return set(state.engine.terminals["T1"].frauds) if "T1" in state.engine.terminals else set()


async def fold_all(labels: list[events.LabelReported]) -> tuple[FeatureState, FakeFeatureLog]:
    state, log = FeatureState(), FakeFeatureLog()
    for seq, label in enumerate(labels, start=1):
        await apply_label(label, seq, state, log)
    return state, log


async def test_a_correction_reaches_the_state_and_an_outranked_label_does_not() -> None:
    state, log = await fold_all(
        [
            reported(False, ANALYST, "user:ann"),  # first: genuine
            reported(True, CHARGEBACK, "service:cb"),  # correction: fraud
            reported(False, ANALYST, "user:bob"),  # outranked: not applied
        ]
    )
    assert frauds(state) == {"t1"} and card_frauds(state) == {"t1"}
    applied = [e for e in log.events if isinstance(e, events.LabelApplied)]
    assert [(e.labels_sequence, e.is_fraud, e.label_source, e.principal) for e in applied] == [
        (1, False, ANALYST, "user:ann"),
        (2, True, CHARGEBACK, "service:cb"),
    ]
    assert state.labels["t1"] == LabelFact(True, CHARGEBACK, "service:cb") and state.labels_seq == 3


def card_frauds(state: FeatureState) -> set[str]:
    return set(state.engine.cards["ct_a"].frauds) if "ct_a" in state.engine.cards else set()


async def test_a_fraud_corrected_to_genuine_leaves_the_known_frauds() -> None:
    state, _ = await fold_all([reported(True, ANALYST, "user:ann"), reported(False, CUSTOMER, "user:cust")])
    assert frauds(state) == set() and card_frauds(state) == set()


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1)])
async def test_the_chargeback_is_in_force_whatever_the_order_of_arrival(order: tuple[int, int, int]) -> None:
    labels = [
        reported(False, ANALYST, "user:ann"),
        reported(True, CHARGEBACK, "service:cb"),
        reported(False, CUSTOMER, "user:cust"),
    ]
    state, _ = await fold_all([labels[i] for i in order])
    assert frauds(state) == {"t1"} and state.labels["t1"].source == CHARGEBACK


async def test_a_restart_replays_to_the_same_label_in_force_and_decides_the_next_label_the_same_way() -> None:
    state, log = await fold_all([reported(True, CHARGEBACK, "service:cb"), reported(False, ANALYST, "user:ann")])
    restarted = await rebuild(log)
    assert restarted.labels == state.labels and frauds(restarted) == frauds(state)
    assert restarted.labels_seq == 1  # the outranked label at sequence 2 is read again after a restart ...
    assert not await apply_label(reported(False, ANALYST, "user:ann"), 2, restarted, log)  # ... and outranked again
    assert len(log.events) == 1


async def test_a_snapshot_carries_the_labels_in_force_and_an_older_snapshot_is_replaced_by_a_replay() -> None:
    state, log = await fold_all([reported(True, ANALYST, "user:ann")])
    snapshots = MemorySnapshots(state.snapshot(partitions=[0]))
    from_snapshot = await rebuild(log, snapshots, [0])
    assert from_snapshot.labels == {"t1": LabelFact(True, ANALYST, "user:ann")} and from_snapshot.applied == 0
    old = state.snapshot(partitions=[0])
    del old["labels"]  # as written before label precedence
    replayed = await rebuild(log, MemorySnapshots(old), [0])
    assert replayed.labels == from_snapshot.labels and replayed.applied == 1


async def test_a_version_1_label_is_folded_as_source_unknown_and_any_later_label_corrects_it() -> None:
    state, log = await fold_all([reported(True, 0, "", version=1), reported(False, ANALYST, "user:ann")])
    applied = [e for e in log.events if isinstance(e, events.LabelApplied)]
    assert applied[0].principal == UNKNOWN_PRINCIPAL and applied[0].label_source == 0
    assert frauds(state) == set() and state.labels["t1"].principal == "user:ann"


async def test_a_label_already_folded_is_not_applied_twice() -> None:
    state, log = await fold_all([reported(True, ANALYST, "user:ann")])
    assert not await apply_label(reported(True, ANALYST, "user:ann"), 1, state, log)
    assert len(log.events) == 1


def test_the_monitor_folds_labels_by_the_same_precedence() -> None:
    from services.monitor.domain.counters import PredictionCounters

    counters = PredictionCounters()
    for label in (
        reported(True, CHARGEBACK, "service:cb"),
        reported(False, ANALYST, "user:ann"),
        reported(False, ANALYST, "user:bob", tx="t2"),
        reported(True, ANALYST, "user:ann", tx="t2"),
    ):
        counters.on_label(label)
    assert counters.labels == 4 and counters.frauds_in_force() == 2
    assert counters.in_force["t1"].source == CHARGEBACK
    assert dict(counters.outcomes) == {"first": 2, "outranked": 1, "correction": 1}
