"""Time split, training (ours vs the Handbook's random forest vs the autoencoder), ONNX, explanations, `fraudctl train`.

The main fixture is the demo's data set (400 customers, 4,000 terminals, 35 days, seed 7, split 21/7/7), so
the claim "ours beats the random forest on average precision and card precision@100" is tested where the
demo makes it.
"""

import hashlib
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd
import pytest
from google.protobuf.json_format import ParseDict
from typer.testing import CliRunner

from fraud.events.v1 import model_events_pb2
from fraudctl.cli import app
from fraudml import anomaly, explain, metrics
from fraudml.datagen import generate, luhn_check_digit, synthetic_pan
from fraudml.onnx_export import INPUT_NAME, OUTPUT_NAME, PARITY_BOUND, onnx_session, predict_onnx
from fraudml.train import TrainResult, customer_card_key, time_split, train
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES, batch_features

DEMO = {"n_customers": 400, "n_terminals": 4_000, "n_days": 35, "seed": 7}
SMALL = {"n_customers": 150, "n_terminals": 1_500, "n_days": 30, "seed": 1}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return generate(**DEMO)


@pytest.fixture(scope="module")
def result(data: pd.DataFrame) -> TrainResult:
    return train(data, train_days=21, delay_days=7, test_days=7)  # exactly what `fraudctl demo` runs


@pytest.fixture(scope="module")
def features(data: pd.DataFrame) -> np.ndarray:
    return batch_features(data.assign(card_token=customer_card_key(data)))


def test_generator_is_deterministic_and_has_every_scenario(data: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(data, generate(**DEMO))
    assert set(data["fraud_scenario"].unique()) == {0, 1, 2, 3}
    assert (data["is_fraud"] == (data["fraud_scenario"] > 0)).all()
    assert data["tx_time"].is_monotonic_increasing and data["tx_id"].is_unique
    assert (data.loc[data["fraud_scenario"] == 1, "amount_minor"] > 22_000).all()
    assert str(data["tx_time"].dt.tz) == "UTC" and data["amount_minor"].dtype == np.int64


def test_synthetic_pans_are_16_digit_luhn_valid_and_stable() -> None:
    assert luhn_check_digit("411111111111111") == "1"  # the classic 4111 1111 1111 1111 test card
    pans = {synthetic_pan(i) for i in range(1_000)}
    assert len(pans) == 1_000
    assert all(len(p) == 16 and p.isdigit() and luhn_check_digit(p[:-1]) == p[-1] for p in pans)
    assert synthetic_pan(42) == synthetic_pan(42)


def test_time_split_counts_back_from_the_last_day(data: pd.DataFrame) -> None:
    split = time_split(data["tx_time"], train_days=21, delay_days=7, test_days=7)
    assert split.bounds["test_end"] == "2026-02-05T00:00:00+00:00"
    assert split.bounds["test_start"] == "2026-01-29T00:00:00+00:00"
    assert split.bounds["train_start"] == "2026-01-01T00:00:00+00:00"
    assert data["tx_time"][split.train].max() < pd.Timestamp(split.bounds["delay_start"])
    assert not np.any(split.train & split.test)
    assert split.periods["delay"] == "2026-01-22T00:00:00+00:00/2026-01-29T00:00:00+00:00"
    with pytest.raises(ValueError, match="spans 35 days"):
        time_split(data["tx_time"], train_days=22, delay_days=7, test_days=7)


def test_ours_beats_the_random_forest_on_ap_and_card_precision(result: TrainResult) -> None:
    ours, forest, autoencoder = result.metrics, result.baseline_metrics, result.anomaly_metrics
    for scores in (ours, forest, autoencoder):
        assert {"auc_roc", "average_precision", "card_precision_at_100"} <= scores.keys()
    assert ours["average_precision"] > forest["average_precision"]
    assert ours["card_precision_at_100"] > forest["card_precision_at_100"]
    assert ours["auc_roc"] > 0.75 and ours["average_precision"] > 0.5
    assert 0.6 < autoencoder["auc_roc"] < ours["auc_roc"]  # label-free, so weaker, but well above chance
    assert result.baseline_params["n_estimators"] == 100 and result.baseline_params["max_depth"] == 20


def test_training_is_fast_and_reproducible() -> None:
    df = generate(**SMALL)
    first, again = train(df, train_days=16, seed=3), train(df, train_days=16, seed=3)
    assert first.metrics["train_seconds"] < 60  # a few seconds alone; generous for a shared 2-core machine
    assert again.sha256 == first.sha256 == hashlib.sha256(first.model_onnx_bytes).hexdigest()
    assert (
        again.anomaly_onnx_bytes == first.anomaly_onnx_bytes
        and again.explainer_model_text == first.explainer_model_text
    )
    assert again.dataset_sha256 == first.dataset_sha256 and len(first.dataset_sha256) == 64
    assert first.baseline_metrics["average_precision"] == again.baseline_metrics["average_precision"]


def test_lineage_fields(result: TrainResult) -> None:
    assert result.feature_names == FEATURE_NAMES and result.feature_set_version == FEATURE_SET_VERSION
    assert result.params["n_estimators"] == 200 and result.params["train_days"] == 21
    assert list(result.data_split) == ["warmup", "train", "delay", "test"]
    assert set(result.feature_importance) == set(FEATURE_NAMES) and result.feature_importance["amount"] > 0
    curve = result.pr_curve
    assert 2 < len(curve["precision"]) == len(curve["recall"]) <= 200 and curve["recall"][0] == 1.0


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


def test_autoencoder_onnx_contract_and_parity(result: TrainResult, data: pd.DataFrame, features: np.ndarray) -> None:
    model = onnx.load_from_string(result.anomaly_onnx_bytes)
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    (graph_output,) = model.graph.output
    assert graph_output.name == anomaly.OUTPUT_NAME
    assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim] == [0, 1]
    scores = anomaly.predict_onnx(result.anomaly_onnx_bytes, features)
    assert scores.shape == (len(features),) and np.all(scores >= 0)
    assert result.anomaly_metrics["parity_rows"] >= 10_000
    assert result.anomaly_metrics["parity_max_rel_diff"] < 1e-5
    labels = data["is_fraud"].to_numpy()
    assert scores[labels == 1].mean() > 2 * scores[labels == 0].mean()  # fraud looks anomalous on average


def test_reference_profile_is_a_reference_profile_proto(result: TrainResult) -> None:
    profile = result.reference_profile
    assert [h["feature"] for h in profile["histograms"]] == [*FEATURE_NAMES, "score"]
    assert profile["rows"] == result.metrics["train_rows"]
    for histogram in profile["histograms"]:
        edges, frequencies = histogram["bin_edges"], histogram["frequencies"]
        assert len(edges) == len(frequencies) + 1 and np.all(np.diff(edges) > 0)
        assert sum(frequencies) == pytest.approx(1.0) and len(frequencies) <= 10
    by_name = {h["feature"]: h for h in profile["histograms"]}
    assert by_name["is_weekend"]["bin_edges"] == [0.0, 1.0, 2.0]  # a flag keeps one bin per value
    assert len(by_name["amount"]["frequencies"]) == 10  # deciles
    proto = ParseDict(profile, model_events_pb2.ReferenceProfile())
    assert len(proto.histograms) == N_FEATURES + 1 and proto.rows == profile["rows"]


def test_thresholds_are_ordered_probabilities(result: TrainResult) -> None:
    assert 0 < result.thresholds["review"] <= result.thresholds["decline"] <= 1


def test_contributions_add_up_to_the_deployed_score(result: TrainResult, features: np.ndarray) -> None:
    rows = features[-2_000:]
    contributions = explain.contributions(result.explainer_model_text, rows)
    bias = explain.bias(result.explainer_model_text, rows)
    assert contributions.shape == (len(rows), N_FEATURES) and np.all(bias == bias[0])
    margin = lgb.Booster(model_str=result.explainer_model_text).predict(rows, raw_score=True)
    np.testing.assert_allclose(contributions.sum(axis=1) + bias, margin, atol=1e-9)
    deployed = predict_onnx(onnx_session(result.model_onnx_bytes), rows)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), deployed, atol=1e-5)  # it explains the ONNX score
    above_base = deployed > 1 / (1 + np.exp(-bias[0]))
    assert np.array_equal(contributions.sum(axis=1) > 0, above_base)  # net push towards fraud <=> above base


def test_contribution_sign_follows_the_score_change() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4_000, 3)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=4_000) > 1.0).astype(int)  # fraud rises with feature 0 only
    model = lgb.LGBMClassifier(n_estimators=30, verbose=-1, random_state=0).fit(x, y, feature_name=["f0", "f1", "f2"])
    text = model.booster_.model_to_string()
    low, high = np.array([[-1.0, 0.0, 0.0]], np.float32), np.array([[2.0, 0.0, 0.0]], np.float32)
    c_low, c_high = explain.contributions(text, low)[0], explain.contributions(text, high)[0]
    score_change = model.booster_.predict(high)[0] - model.booster_.predict(low)[0]
    assert score_change > 0 and c_high[0] > 0 > c_low[0]
    assert np.sign(c_high[0] - c_low[0]) == np.sign(score_change)
    assert max(explain.feature_importance(text), key=explain.feature_importance(text).get) == "f0"


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


def test_cli_train_writes_the_model_directory(tmp_path: Path) -> None:
    data = tmp_path / "tx.parquet"
    generate(**SMALL).to_parquet(data)
    out = tmp_path / "models" / "card-fraud-gbdt-2.1.0"
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "random forest" in result.output and "autoencoder" in result.output
    files = {p.name for p in out.iterdir()}
    assert files == {"model.onnx", "anomaly.onnx", "explainer.txt", "metadata.json", "model_card.html"}
    meta = json.loads((out / "metadata.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert (meta["model_name"], meta["version"], meta["schema_version"]) == ("card-fraud-gbdt", "2.1.0", 1)
    assert meta["model_sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert meta["artifacts"]["anomaly"]["sha256"] == hashlib.sha256((out / "anomaly.onnx").read_bytes()).hexdigest()
    assert meta["dataset"]["file_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert meta["params"]["train_days"] == 16  # default: every day before delay (7) + test (7)
    assert len(meta["code_revision"]) == 40 or meta["code_revision"] == "unknown"
    for key in ("metrics", "baseline_metrics", "anomaly_metrics", "thresholds", "reference_profile", "data_split"):
        assert meta[key], key
    again = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(out)])
    assert again.exit_code == 1 and "already holds a model" in again.output
    missing = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "none.parquet")])
    assert missing.exit_code == 1 and "no such file" in missing.output and "Traceback" not in missing.output
