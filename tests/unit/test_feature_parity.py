"""One feature definition: the features SERVICE (its handler, fed request by request) == batch training features.

The same stream goes to both: transactions with terminal locations, and delayed fraud labels interleaved
where a live stream would deliver them (at their report time), so terminal risk, the card's known frauds
and the distance feature are all exercised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pandas as pd
import pytest

from fraud.common.v1 import geo_pb2, money_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudml.datagen import generate
from fraudshared.features import FEATURE_NAMES, N_FEATURES, batch_features, known_labels
from fraudshared.features.recorded import Recorded
from services.features.service_layer.handlers import FeatureState, apply_label, compute_features, rebuild


class InMemoryFeatureLog:
    """The FEATURES stream as a list: sequence numbers from 1, one event per transaction id and kind."""

    def __init__(self) -> None:
        self.events: list[Recorded] = []

    async def _append(self, event: Recorded) -> tuple[Recorded | None, int]:
        for seq, recorded in enumerate(self.events, start=1):
            if type(recorded) is type(event) and recorded.transaction_id == event.transaction_id:
                return recorded, seq
        self.events.append(event)
        return None, len(self.events)

    async def append_computed(self, event: events.FeatureVectorComputed) -> tuple[Recorded | None, int]:
        return await self._append(event)

    async def append_label(self, event: events.LabelApplied) -> tuple[Recorded | None, int]:
        return await self._append(event)

    async def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, Recorded]]:
        for seq, event in enumerate(list(self.events), start=1):
            if seq >= from_seq:
                yield seq, event


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    df = generate(n_customers=120, n_terminals=120, n_days=25, seed=11)  # few terminals: busy terminal windows
    df["card_token"] = "ct_" + df["customer_id"].astype(str)
    df.loc[df.index % 17 == 0, ["terminal_lat", "terminal_lon"]] = np.nan  # some terminals without a location
    return df


@pytest.fixture(scope="module")
def labels(stream: pd.DataFrame) -> pd.DataFrame:
    return known_labels(stream)


def request(row: pd.Series) -> features.ComputeFeaturesRequest:
    r = features.ComputeFeaturesRequest(
        transaction_id=row.tx_id,
        card_token=row.card_token,
        terminal_id=row.terminal_id,
        amount=money_pb2.Money(amount_minor=int(row.amount_minor), currency=row.currency),
    )
    r.event_time.FromDatetime(row.tx_time.to_pydatetime())
    if not np.isnan(row.terminal_lat):
        r.terminal_location.CopyFrom(geo_pb2.GeoPoint(latitude=row.terminal_lat, longitude=row.terminal_lon))
    return r


def label_event(label: pd.Series) -> events.LabelReported:
    event = events.LabelReported(
        transaction_id=label.tx_id, is_fraud=True, card_token=label.card_token, terminal_id=label.terminal_id
    )
    event.reported_at.FromDatetime(label.reported_at.to_pydatetime())
    event.event_time.FromDatetime(label.tx_time.to_pydatetime())
    return event


async def serve(rows: pd.DataFrame, labels: pd.DataFrame, state: FeatureState, log: InMemoryFeatureLog) -> np.ndarray:
    """Each transaction in order, each label (LABELS sequence = its row number + 1) as soon as it is reported.

    Labels the state already folded (a restart) are skipped by the handler itself, by their sequence.
    """
    queue, answers = list(labels.sort_values("reported_at", kind="stable").itertuples()), []
    for row in rows.itertuples():
        while queue and queue[0].reported_at <= row.tx_time:
            label = queue.pop(0)
            await apply_label(label_event(label), labels.index.get_loc(label.Index) + 1, state, log)
        answers.append(await compute_features(request(row), state, log))
    return np.array([list(a.values) for a in answers], dtype=np.float32).reshape(-1, N_FEATURES)


async def test_service_handler_and_batch_give_identical_vectors(stream: pd.DataFrame, labels: pd.DataFrame) -> None:
    online = await serve(stream, labels, FeatureState(), InMemoryFeatureLog())
    batch = batch_features(stream, labels=labels)
    assert online.shape == batch.shape == (len(stream), N_FEATURES)
    assert np.array_equal(online, batch)  # bit-identical float32, through the proto's float fields
    column = {name: batch[:, i] for i, name in enumerate(FEATURE_NAMES)}
    assert column["terminal_tx_count_7d"].max() > 20  # terminal windows filled up: shared terminal state used
    assert column["terminal_risk_7d"].max() > 0.5  # labels folded: compromised terminals show
    assert column["card_known_frauds_30d"].max() >= 2
    assert (column["card_terminal_distance_km"] == -1).any() and column["card_terminal_distance_km"].max() > 1


async def test_restarted_service_continues_identically(stream: pd.DataFrame, labels: pd.DataFrame) -> None:
    half = len(stream) // 2
    log = InMemoryFeatureLog()
    first = await serve(stream.iloc[:half], labels, FeatureState(), log)
    restarted = await rebuild(log)  # state is the fold of the recorded events, labels included
    assert restarted.labels_seq > 0
    second = await serve(stream.iloc[half:], labels, restarted, log)
    assert np.array_equal(np.vstack([first, second]), batch_features(stream, labels=labels))
