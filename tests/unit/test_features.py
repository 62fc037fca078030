"""The shared feature definition: online == batch, point-in-time, event-time windows, snapshots."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudml.datagen import generate
from fraudshared.features import (
    FEATURE_NAMES,
    N_FEATURES,
    FeatureEngine,
    Transaction,
    batch_features,
    to_epoch_us,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def tx(i: int, at: datetime, card: str = "card-a", terminal: str = "term-1", amount_minor: int = 10_00) -> Transaction:
    return Transaction.create(f"tx-{i}", at, card, terminal, amount_minor)


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    df = generate(n_customers=150, n_terminals=150, n_days=40, seed=7)
    df["card_token"] = "card-" + df["customer_id"].astype(str)
    return df


def test_online_and_batch_give_identical_vectors(stream: pd.DataFrame) -> None:
    batch = batch_features(stream)
    engine = FeatureEngine()
    rows = stream.itertuples()
    online = np.stack(
        [
            engine.score_then_update(
                Transaction.create(
                    r.tx_id, r.tx_time, r.card_token, r.terminal_id, r.amount_minor, (r.terminal_lat, r.terminal_lon)
                )
            )
            for r in rows
        ]
    )
    assert batch.shape == (len(stream), N_FEATURES) and batch.dtype == np.float32
    assert np.array_equal(online, batch)  # bit-identical, not merely close
    assert batch[:, COL["card_tx_count_30d"]].max() > 10  # the windows did fill up


def test_batch_follows_event_time_not_row_order(stream: pd.DataFrame) -> None:
    shuffled = stream.sample(frac=1.0, random_state=1)
    assert np.array_equal(batch_features(shuffled), batch_features(stream)[stream.index.get_indexer(shuffled.index)])


def test_snapshot_round_trip_continues_identically(stream: pd.DataFrame) -> None:
    half = len(stream) // 2
    whole = batch_features(stream)
    engine = FeatureEngine()
    batch_features(stream.iloc[:half], engine)
    restored = FeatureEngine.from_dict(json.loads(json.dumps(engine.to_dict())))
    assert np.array_equal(batch_features(stream.iloc[half:], restored), whole[half:])
    with pytest.raises(ValueError, match="card-v0"):
        FeatureEngine.from_dict({**engine.to_dict(), "feature_set_version": "card-v0"})


def test_first_transaction_of_a_card_has_cold_start_values_and_never_sees_itself() -> None:
    engine = FeatureEngine()
    first = engine.score_then_update(tx(1, T0, amount_minor=123_45))
    assert first[COL["amount"]] == pytest.approx(123.45)
    assert first[COL["card_tx_count_1d"]] == 0 and first[COL["card_mean_amount_30d"]] == 0
    assert first[COL["amount_to_card_mean_30d"]] == 1.0
    assert first[COL["terminal_tx_count_1d"]] == 0
    second = engine.vector_for(tx(2, T0 + timedelta(minutes=1), amount_minor=50_00))
    assert second[COL["card_tx_count_1d"]] == 1
    assert second[COL["card_mean_amount_1d"]] == pytest.approx(123.45)
    assert second[COL["amount_to_card_mean_30d"]] == pytest.approx(50 / 123.45)
    assert np.array_equal(engine.vector_for(tx(2, T0 + timedelta(minutes=1), amount_minor=50_00)), second)


def test_same_event_time_is_ordered_by_arrival() -> None:
    engine = FeatureEngine()
    a = engine.score_then_update(tx(1, T0))
    b = engine.score_then_update(tx(2, T0))
    assert a[COL["card_tx_count_1d"]] == 0 and b[COL["card_tx_count_1d"]] == 1


def test_windows_expire_by_event_time() -> None:
    engine = FeatureEngine()
    engine.apply(tx(1, T0, amount_minor=100_00))
    just_inside = engine.vector_for(tx(2, T0 + timedelta(days=1) - timedelta(microseconds=1)))
    assert just_inside[COL["card_tx_count_1d"]] == 1 and just_inside[COL["terminal_tx_count_1d"]] == 1
    at_one_day = engine.vector_for(tx(2, T0 + timedelta(days=1)))  # windows are (t - 1d, t]
    assert at_one_day[COL["card_tx_count_1d"]] == 0 and at_one_day[COL["card_tx_count_7d"]] == 1
    later = engine.vector_for(tx(3, T0 + timedelta(days=8)))
    assert later[COL["card_tx_count_7d"]] == 0 and later[COL["card_tx_count_30d"]] == 1
    assert later[COL["terminal_tx_count_7d"]] == 0
    gone = engine.vector_for(tx(4, T0 + timedelta(days=31)))
    assert gone[COL["card_tx_count_30d"]] == 0 and gone[COL["amount_to_card_mean_30d"]] == 1.0


def test_late_event_does_not_see_later_events_and_is_inserted_in_time_order() -> None:
    engine = FeatureEngine()
    engine.apply(tx(1, T0, amount_minor=10_00))
    engine.apply(tx(2, T0 + timedelta(hours=5), amount_minor=30_00))
    late = engine.score_then_update(tx(3, T0 + timedelta(hours=1), amount_minor=20_00))
    assert late[COL["card_tx_count_1d"]] == 1 and late[COL["card_mean_amount_1d"]] == 10
    after = engine.vector_for(tx(4, T0 + timedelta(hours=6)))
    assert after[COL["card_tx_count_1d"]] == 3 and after[COL["card_mean_amount_1d"]] == 20


def test_calendar_flags_use_utc_event_time() -> None:
    engine = FeatureEngine()
    saturday_night = engine.vector_for(tx(1, datetime(2026, 3, 7, 5, 59, tzinfo=UTC)))
    assert saturday_night[COL["is_weekend"]] == 1 and saturday_night[COL["is_night"]] == 1
    monday_morning = engine.vector_for(tx(2, datetime(2026, 3, 9, 6, 0, tzinfo=UTC)))
    assert monday_morning[COL["is_weekend"]] == 0 and monday_morning[COL["is_night"]] == 0


def test_event_time_accepts_epoch_seconds_and_rejects_naive_datetimes() -> None:
    assert to_epoch_us(T0.timestamp()) == to_epoch_us(T0) == to_epoch_us(pd.Timestamp(T0))
    with pytest.raises(ValueError, match="timezone-aware"):
        to_epoch_us(datetime(2026, 1, 1))
