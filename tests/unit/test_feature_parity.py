"""One feature definition: the features SERVICE (its handler, fed request by request) == batch training features."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pandas as pd
import pytest

from fraud.common.v1 import money_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudml.datagen import generate
from fraudshared.features import N_FEATURES, batch_features
from services.features.service_layer.handlers import FeatureState, compute_features, rebuild


class InMemoryFeatureLog:
    """The FEATURES stream as a list: sequence numbers from 1, one event per transaction id."""

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


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    df = generate(n_customers=120, n_terminals=120, n_days=25, seed=11)  # few terminals: busy terminal windows
    df["card_token"] = "ct_" + df["customer_id"].astype(str)
    return df


def request(row: pd.Series) -> features.ComputeFeaturesRequest:
    r = features.ComputeFeaturesRequest(
        transaction_id=row.tx_id,
        card_token=row.card_token,
        terminal_id=row.terminal_id,
        amount=money_pb2.Money(amount_minor=int(row.amount_minor), currency=row.currency),
    )
    r.event_time.FromDatetime(row.tx_time.to_pydatetime())
    return r


async def serve(rows: pd.DataFrame, state: FeatureState, log: InMemoryFeatureLog) -> np.ndarray:
    answers = [await compute_features(request(row), state, log) for row in rows.itertuples()]
    return np.array([list(a.values) for a in answers], dtype=np.float32).reshape(-1, N_FEATURES)


async def test_service_handler_and_batch_give_identical_vectors(stream: pd.DataFrame) -> None:
    online = await serve(stream, FeatureState(), InMemoryFeatureLog())
    batch = batch_features(stream)
    assert online.shape == batch.shape == (len(stream), N_FEATURES)
    assert np.array_equal(online, batch)  # bit-identical float32, through the proto's float fields
    assert batch[:, -1].max() > 20  # terminal windows filled up: the shared terminal state was exercised


async def test_restarted_service_continues_identically(stream: pd.DataFrame) -> None:
    half = len(stream) // 2
    log = InMemoryFeatureLog()
    first = await serve(stream.iloc[:half], FeatureState(), log)
    restarted = await rebuild(log)  # state is the fold of the recorded events
    second = await serve(stream.iloc[half:], restarted, log)
    assert np.array_equal(np.vstack([first, second]), batch_features(stream))
