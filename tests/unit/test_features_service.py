"""Features service: point-in-time vectors, idempotent retries, rebuild from snapshot + recorded events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fraud.common.v1 import money_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudshared.features import FEATURE_NAMES
from services.features.service_layer.handlers import FeatureState, compute_features, rebuild

COUNT_1D = FEATURE_NAMES.index("card_tx_count_1d")
TERMINAL_1D = FEATURE_NAMES.index("terminal_tx_count_1d")


class FakeFeatureLog:
    def __init__(self) -> None:
        self.events: list[events.FeatureVectorComputed] = []

    async def append_computed(
        self, event: events.FeatureVectorComputed
    ) -> tuple[events.FeatureVectorComputed | None, int]:
        for seq, recorded in enumerate(self.events, start=1):
            if recorded.transaction_id == event.transaction_id:
                return recorded, seq
        self.events.append(event)
        return None, len(self.events)

    async def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, events.FeatureVectorComputed]]:
        for seq, event in enumerate(list(self.events), start=1):
            if seq >= from_seq:
                yield seq, event


class MemorySnapshots:
    def __init__(self) -> None:
        self.saved: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.saved

    def save(self, snapshot: dict[str, Any]) -> None:
        self.saved = snapshot


def req(tx: str, minutes: int, card: str = "ct_a", amount: int = 1000) -> features.ComputeFeaturesRequest:
    r = features.ComputeFeaturesRequest(
        transaction_id=tx,
        card_token=card,
        terminal_id="T1",
        amount=money_pb2.Money(amount_minor=amount, currency="EUR"),
    )
    r.event_time.FromDatetime(datetime(2026, 11, 2, 10, tzinfo=UTC) + timedelta(minutes=minutes))
    return r


async def test_vector_sees_only_earlier_transactions_and_retry_is_stable() -> None:
    state, log = FeatureState(), FakeFeatureLog()
    first = await compute_features(req("t1", 0), state, log)
    second = await compute_features(req("t2", 5), state, log)
    assert first.values[COUNT_1D] == 0.0 and second.values[COUNT_1D] == 1.0
    again = await compute_features(req("t1", 0), state, log)
    assert list(again.values) == list(first.values)
    assert len(log.events) == 2 and state.applied == 2 and state.last_seq == 2


async def test_rebuild_from_log_reproduces_state() -> None:
    state, log = FeatureState(), FakeFeatureLog()
    for i in range(5):
        await compute_features(req(f"t{i}", i), state, log)
    restarted = await rebuild(log)
    assert restarted.applied == 5 and restarted.last_seq == 5
    after_live = await compute_features(req("t9", 60), state, FakeFeatureLog())
    after_restart = await compute_features(req("t9", 60), restarted, FakeFeatureLog())
    assert list(after_live.values) == list(after_restart.values)
    assert after_restart.values[COUNT_1D] == 5.0


async def test_snapshot_plus_tail_equals_full_replay_and_is_not_applied_twice() -> None:
    state, log, snapshots = FeatureState(), FakeFeatureLog(), MemorySnapshots()
    for i in range(4):
        await compute_features(req(f"t{i}", i, card=f"ct_{i % 2}"), state, log)
    snapshots.save(state.snapshot([0]))
    for i in range(4, 7):
        await compute_features(req(f"t{i}", i, card=f"ct_{i % 2}"), state, log)
    from_snapshot = await rebuild(log, snapshots, [0])
    assert from_snapshot.applied == 3 and from_snapshot.last_seq == 7  # only the tail was replayed
    probe = req("probe", 30, card="ct_1")
    full = await compute_features(probe, await rebuild(log), FakeFeatureLog())
    assert list((await compute_features(probe, from_snapshot, FakeFeatureLog())).values) == list(full.values)
    assert full.values[TERMINAL_1D] == 7.0
    # a snapshot of other partitions is ignored, not misapplied
    assert (await rebuild(log, snapshots, [1])).applied == 7


async def test_event_recorded_by_an_earlier_attempt_is_adopted_and_the_state_repaired() -> None:
    log = FakeFeatureLog()
    await compute_features(req("t1", 0, amount=5000), FeatureState(), log)
    other = await rebuild(log)
    other.recent.clear()  # e.g. evicted: the retry is answered from the log, and the state rebuilt
    response = await compute_features(req("t1", 0, amount=5000), other, log)
    assert list(response.values) == list(log.events[0].values) and other.stale
    after = await compute_features(req("t2", 1, amount=100), other, log)
    assert not other.stale and other.applied == 2 and other.last_seq == 2
    assert after.values[COUNT_1D] == 1.0  # t1 counted once, not twice


async def test_a_failed_append_voids_the_optimistic_fold() -> None:
    class FailingOnce(FakeFeatureLog):
        failed = False

        async def append_computed(self, event: events.FeatureVectorComputed) -> tuple[None, int]:
            if not self.failed:
                self.failed = True
                raise TimeoutError("no ack")
            return await super().append_computed(event)  # type: ignore[return-value]

    state, log = FeatureState(), FailingOnce()
    with pytest.raises(TimeoutError):
        await compute_features(req("t1", 0), state, log)
    assert state.stale
    second = await compute_features(req("t2", 1), state, log)
    assert second.values[COUNT_1D] == 0.0 and state.applied == 1  # t1 was never recorded, so never counted


async def test_the_rebuild_after_a_voided_fold_starts_from_the_latest_snapshot() -> None:
    class FailOn(FakeFeatureLog):
        fail_tx = "t3"
        replayed_from: list[int] = []

        async def append_computed(self, event: events.FeatureVectorComputed) -> tuple[None, int]:
            if event.transaction_id == self.fail_tx:
                self.fail_tx = ""
                raise TimeoutError("no ack")
            return await super().append_computed(event)  # type: ignore[return-value]

        async def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, events.FeatureVectorComputed]]:
            self.replayed_from.append(from_seq)
            async for item in super().replay(from_seq):
                yield item

    log, snapshots = FailOn(), MemorySnapshots()
    state = await rebuild(log, snapshots, [0])
    for i in range(2):
        await compute_features(req(f"t{i + 1}", i), state, log)
    await state.settle()
    snapshots.save(state.snapshot([0]))  # covers t1, t2
    with pytest.raises(TimeoutError):
        await compute_features(req("t3", 2), state, log)
    after = await compute_features(req("t4", 3), state, log)
    assert log.replayed_from[-1] == 3  # from the snapshot's sequence on, not the whole log
    assert after.values[COUNT_1D] == 2.0 and not state.stale  # t1 and t2 from the snapshot; t3 never recorded
