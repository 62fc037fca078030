"""card-v2's label-driven and location features: delayed terminal risk, the card's known frauds, distance."""

from datetime import UTC, datetime, timedelta

import pytest

from fraudshared.features import (
    FEATURE_NAMES,
    HANDBOOK_FEATURES,
    LABEL_DELAY_DAYS,
    UNKNOWN_DISTANCE,
    FeatureEngine,
    Label,
    Transaction,
    distance_km,
    to_epoch_us,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
DELAY = timedelta(days=LABEL_DELAY_DAYS)
PARIS, LYON = (48.8566, 2.3522), (45.7640, 4.8357)


def tx(i: int, at: datetime, card: str = "card-a", terminal: str = "term-1", where=None) -> Transaction:
    return Transaction.create(f"tx-{i}", at, card, terminal, 10_00, where)


def fraud(i: int, at: datetime, reported: datetime, card: str = "card-a", terminal: str = "term-1") -> Label:
    return Label(f"tx-{i}", terminal, to_epoch_us(at), True, to_epoch_us(reported), card)


def test_terminal_risk_counts_only_the_delayed_window_and_only_reported_labels() -> None:
    engine = FeatureEngine()
    for i in range(4):  # four transactions at the terminal on day 0, one of them fraud
        engine.apply(tx(i, T0 + timedelta(minutes=i), card=f"card-{i}"))
    engine.apply_label(fraud(0, T0, reported=T0 + DELAY + timedelta(hours=1), card="card-0"))

    before_report = engine.vector_for(tx(9, T0 + DELAY + timedelta(minutes=30), card="card-x"))
    assert before_report[COL["terminal_delayed_tx_count_1d"]] == 4  # day 0 is inside (t - 7d - 1d, t - 7d]
    assert before_report[COL["terminal_risk_1d"]] == 0  # the label is folded but not reported yet at t

    after_report = engine.vector_for(tx(9, T0 + DELAY + timedelta(hours=2), card="card-x"))
    assert after_report[COL["terminal_risk_1d"]] == pytest.approx(0.25)
    assert after_report[COL["terminal_risk_7d"]] == pytest.approx(0.25)
    assert after_report[COL["terminal_tx_count_1d"]] == 0  # the recent window no longer holds day 0

    too_recent = engine.vector_for(tx(9, T0 + timedelta(days=3), card="card-x"))
    assert too_recent[COL["terminal_delayed_tx_count_30d"]] == 0  # day 0 is not yet older than the delay
    assert too_recent[COL["terminal_risk_30d"]] == 0

    expired = engine.vector_for(tx(9, T0 + DELAY + timedelta(days=31), card="card-x"))
    assert expired[COL["terminal_delayed_tx_count_30d"]] == 0 and expired[COL["terminal_risk_30d"]] == 0


def test_a_genuine_label_corrects_an_earlier_fraud_label() -> None:
    engine = FeatureEngine()
    engine.apply(tx(1, T0))
    engine.apply_label(fraud(1, T0, reported=T0 + timedelta(days=1)))
    at = T0 + DELAY + timedelta(hours=1)
    assert engine.vector_for(tx(2, at, card="b"))[COL["terminal_risk_1d"]] == 1.0
    engine.apply_label(Label("tx-1", "term-1", to_epoch_us(T0), False, to_epoch_us(T0 + timedelta(days=2)), "card-a"))
    assert engine.vector_for(tx(2, at, card="b"))[COL["terminal_risk_1d"]] == 0.0


def test_card_known_frauds_count_reported_labels_of_the_last_30_days() -> None:
    engine = FeatureEngine()
    engine.apply(tx(1, T0))
    engine.apply_label(fraud(1, T0, reported=T0 + timedelta(days=2)))
    assert engine.vector_for(tx(2, T0 + timedelta(days=1)))[COL["card_known_frauds_30d"]] == 0  # not reported yet
    assert engine.vector_for(tx(2, T0 + timedelta(days=2)))[COL["card_known_frauds_30d"]] == 1
    assert engine.vector_for(tx(2, T0 + timedelta(days=2), card="card-b"))[COL["card_known_frauds_30d"]] == 0
    assert engine.vector_for(tx(2, T0 + timedelta(days=30)))[COL["card_known_frauds_30d"]] == 0


def test_distance_from_the_centroid_of_the_cards_located_terminals() -> None:
    engine = FeatureEngine()
    assert engine.vector_for(tx(1, T0, where=PARIS))[COL["card_terminal_distance_km"]] == UNKNOWN_DISTANCE
    engine.apply(tx(1, T0, where=PARIS))
    engine.apply(tx(2, T0 + timedelta(hours=1), terminal="term-2"))  # no location: not in the centroid
    near = engine.vector_for(tx(3, T0 + timedelta(hours=2), where=PARIS))
    assert near[COL["card_terminal_distance_km"]] == pytest.approx(0.0, abs=1e-3)
    far = engine.vector_for(tx(3, T0 + timedelta(hours=2), where=LYON))
    assert far[COL["card_terminal_distance_km"]] == pytest.approx(distance_km(PARIS, LYON), rel=1e-6)
    assert 380 < distance_km(PARIS, LYON) < 400  # the haversine distance, about 392 km
    unknown = engine.vector_for(tx(3, T0 + timedelta(hours=2)))
    assert unknown[COL["card_terminal_distance_km"]] == UNKNOWN_DISTANCE
    forgotten = engine.vector_for(tx(3, T0 + timedelta(days=31), where=LYON))
    assert forgotten[COL["card_terminal_distance_km"]] == UNKNOWN_DISTANCE  # nothing located in 30 days


def test_labels_and_locations_survive_a_snapshot() -> None:
    engine = FeatureEngine()
    engine.apply(tx(1, T0, where=PARIS))
    engine.apply_label(fraud(1, T0, reported=T0 + timedelta(days=1)))
    probe = tx(2, T0 + DELAY + timedelta(hours=1), where=LYON)
    restored = FeatureEngine.from_dict(engine.to_dict())
    assert (restored.vector_for(probe) == engine.vector_for(probe)).all()
    assert restored.vector_for(probe)[COL["terminal_risk_1d"]] == 1.0


def test_the_handbook_baseline_features_are_a_subset_of_ours() -> None:
    assert set(HANDBOOK_FEATURES) < set(FEATURE_NAMES) and len(HANDBOOK_FEATURES) == 15
    assert "terminal_risk_30d" in HANDBOOK_FEATURES and "card_terminal_distance_km" not in HANDBOOK_FEATURES
