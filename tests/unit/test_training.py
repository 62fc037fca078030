"""Synthetic data, time split, training, ONNX contract and native-vs-ONNX parity on a small data set."""

import hashlib

import numpy as np
import onnx
import pandas as pd
import pytest

from fraudml import metrics
from fraudml.datagen import generate, luhn_check_digit, synthetic_pan
from fraudml.onnx_export import INPUT_NAME, OUTPUT_NAME, PARITY_BOUND, onnx_session, predict_onnx
from fraudml.train import TrainResult, time_split, train
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return generate(n_customers=600, n_terminals=10_000, n_days=49, seed=3)


@pytest.fixture(scope="module")
def result(data: pd.DataFrame) -> TrainResult:
    return train(data, seed=0)


def test_generator_is_deterministic_and_has_every_scenario(data: pd.DataFrame) -> None:
    again = generate(n_customers=600, n_terminals=10_000, n_days=49, seed=3)
    pd.testing.assert_frame_equal(data, again)
    assert set(data["fraud_scenario"].unique()) == {0, 1, 2, 3}
    assert (data["is_fraud"] == (data["fraud_scenario"] > 0)).all()
    assert data["tx_time"].is_monotonic_increasing and data["tx_id"].is_unique
    assert (data.loc[data["fraud_scenario"] == 1, "amount_minor"] > 22_000).all()
    assert str(data["tx_time"].dt.tz) == "UTC" and data["amount_minor"].dtype == np.int64
    assert not generate(n_customers=50, n_terminals=500, n_days=3, seed=4).equals(data.head(0))


def test_synthetic_pans_are_16_digit_luhn_valid_and_stable() -> None:
    assert luhn_check_digit("411111111111111") == "1"  # the classic 4111 1111 1111 1111 test card
    pans = {synthetic_pan(i) for i in range(1_000)}
    assert len(pans) == 1_000
    assert all(len(p) == 16 and p.isdigit() and luhn_check_digit(p[:-1]) == p[-1] for p in pans)
    assert synthetic_pan(42) == synthetic_pan(42)


def test_time_split_counts_back_from_the_last_day(data: pd.DataFrame) -> None:
    split = time_split(data["tx_time"], train_days=21, delay_days=7, test_days=7)
    assert split.bounds["test_end"] == "2026-02-19T00:00:00+00:00"
    assert split.bounds["test_start"] == "2026-02-12T00:00:00+00:00"
    assert split.bounds["train_start"] == "2026-01-15T00:00:00+00:00"
    assert data["tx_time"][split.train].max() < pd.Timestamp(split.bounds["delay_start"])
    assert not np.any(split.train & split.test)
    with pytest.raises(ValueError, match="spans 49 days"):
        time_split(data["tx_time"], train_days=40, delay_days=7, test_days=7)


def test_training_is_fast_accurate_and_reproducible(data: pd.DataFrame, result: TrainResult) -> None:
    assert result.metrics["train_seconds"] < 60  # a few seconds alone; generous for a shared 2-core machine
    assert result.metrics["auc_roc"] > 0.75
    assert result.metrics["average_precision"] > 0.3
    assert 0 <= result.metrics["card_precision_at_100"] <= 1
    assert result.sha256 == hashlib.sha256(result.model_onnx_bytes).hexdigest()
    assert result.feature_names == FEATURE_NAMES and result.feature_set_version == FEATURE_SET_VERSION
    assert result.params["n_estimators"] == 100 and result.params["max_depth"] == 6
    assert len(result.dataset_sha256) == 64
    again = train(data, seed=0)
    assert again.sha256 == result.sha256 and again.dataset_sha256 == result.dataset_sha256


def test_onnx_matches_native_lightgbm_on_every_row(result: TrainResult) -> None:
    assert result.metrics["parity_rows"] >= 10_000
    assert result.metrics["parity_max_abs_diff"] < PARITY_BOUND


def test_onnx_graph_has_the_platform_contract(result: TrainResult) -> None:
    model = onnx.load_from_string(result.model_onnx_bytes)
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.name == INPUT_NAME and graph_output.name == OUTPUT_NAME
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [0, N_FEATURES]
    assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim] == [0, 1]
    scores = predict_onnx(onnx_session(result.model_onnx_bytes), np.zeros((3, N_FEATURES), dtype=np.float32))
    assert scores.shape == (3,) and scores.dtype == np.float32 and np.all((scores >= 0) & (scores <= 1))


def test_thresholds_are_ordered_probabilities(result: TrainResult) -> None:
    assert 0 < result.thresholds["review"] <= result.thresholds["decline"] <= 1


def test_card_precision_at_k_ranks_cards_per_day() -> None:
    days = np.array([0, 0, 0, 0, 1, 1])
    cards = np.array(["a", "a", "b", "c", "a", "b"])
    labels = np.array([0, 1, 0, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.7])
    mean, per_day = metrics.card_precision_at_k(days, cards, labels, scores, k=2)
    assert per_day == [0.5, 0.5] and mean == 0.5  # day 0: a (fraud) and b; day 1: b (fraud) and a


def test_threshold_for_precision_falls_back_to_never_firing() -> None:
    labels = np.array([0, 0, 1, 1])
    assert metrics.threshold_for_precision(labels, np.array([0.1, 0.2, 0.3, 0.4]), 0.9) == pytest.approx(0.3)
    assert metrics.threshold_for_precision(labels, np.array([0.4, 0.3, 0.2, 0.1]), 0.9) > 1.0
