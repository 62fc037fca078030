"""Features service: point-in-time vectors, idempotent retries, rebuild from the recorded events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fraud.common.v1 import money_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudshared.features import FEATURE_NAMES
from services.features.service_layer.handlers import FeatureState, compute_features, rebuild

COUNT_1D = FEATURE_NAMES.index("card_tx_count_1d")


class FakeFeatureLog:
    def __init__(self) -> None:
        self.events: list[events.FeatureVectorComputed] = []

    async def append_computed(self, event: events.FeatureVectorComputed) -> events.FeatureVectorComputed | None:
        for recorded in self.events:
            if recorded.transaction_id == event.transaction_id:
                return recorded
        self.events.append(event)
        return None

    async def replay(self) -> AsyncIterator[events.FeatureVectorComputed]:
        for event in list(self.events):
            yield event


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
    assert len(log.events) == 2 and state.applied == 2


async def test_rebuild_from_log_reproduces_state() -> None:
    state, log = FeatureState(), FakeFeatureLog()
    for i in range(5):
        await compute_features(req(f"t{i}", i), state, log)
    restarted = FeatureState()
    assert await rebuild(restarted, log) == 5
    after_live = await compute_features(req("t9", 60), state, FakeFeatureLog())
    after_restart = await compute_features(req("t9", 60), restarted, FakeFeatureLog())
    assert list(after_live.values) == list(after_restart.values)
    assert after_restart.values[COUNT_1D] == 5.0


async def test_event_recorded_by_another_instance_is_adopted() -> None:
    log = FakeFeatureLog()
    await compute_features(req("t1", 0, amount=5000), FeatureState(), log)
    other = FeatureState()
    response = await compute_features(req("t1", 0, amount=5000), other, log)
    assert list(response.values) == list(log.events[0].values) and other.applied == 1
