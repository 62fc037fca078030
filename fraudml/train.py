"""Train the card-fraud models: time split, shared features, LightGBM + autoencoder + RF baseline, ONNX, evaluation.

The split follows card-fraud practice (Fraud Detection Handbook, ch. 5): counted back from the last day of
data, `test_days` of test, before them `delay_days` whose labels are not yet known when the model is trained
(the investigation delay), before those `train_days` of training; anything earlier only warms up the feature
state. Features are computed once over the whole time-ordered stream by the same engine the features service
runs, so test rows see the history an online scorer would have seen. Three models learn from the same
training rows and are scored on the same test rows: ours (LightGBM, deployed), the Handbook's random-forest
baseline (the bar ours must clear) and an autoencoder anomaly score (a second, label-free opinion).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from fraudml import anomaly, baseline, metrics
from fraudml.explain import feature_importance
from fraudml.lineage import DATASET_COLUMNS
from fraudml.lineage import dataset_sha256 as dataset_sha256
from fraudml.onnx_export import float32_exact_booster, onnx_session, parity_max_abs_diff, predict_onnx, to_onnx
from fraudml.profile import reference_profile
from fraudshared.features import (
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    HANDBOOK_FEATURES,
    N_FEATURES,
    batch_features,
    known_labels,
)

DAY = pd.Timedelta(days=1)
# Tuned against the RF baseline on the demo's data (400 customers, 4,000 terminals, 35 days) over 12 seeds and
# on 1,500 customers over 6: slower learning, leaves of at least 50 rows, L2 and column sampling (see
# docs/models.md, "Tuning").
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 6,
    "num_leaves": 31,
    "learning_rate": 0.05,
    "min_child_samples": 50,
    "min_split_gain": 0.01,
    "colsample_bytree": 0.8,
    "reg_lambda": 10.0,
    "n_jobs": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


def customer_card_key(df: pd.DataFrame) -> pd.Series:
    """Stand-in card token for generated data: "card-<customer_id>" (one card per customer).

    The platform keys card state by the token ingest derives from the PAN; any stable one-to-one key
    works for training, and the model never sees the key itself, only the features built on it.
    """
    return "card-" + df["customer_id"].astype(str)


@dataclass(frozen=True)
class TrainResult:
    """Everything the registry records about a trained model (lineage included)."""

    model_onnx_bytes: bytes
    sha256: str
    metrics: dict[str, float]
    feature_names: tuple[str, ...]
    feature_set_version: str
    params: dict[str, Any]
    dataset_sha256: str
    thresholds: dict[str, float]
    split: dict[str, str] = field(default_factory=dict)
    # LightGBM model text (float32-exact thresholds, as exported) for per-decision contributions.
    explainer_model_text: str = ""
    # The autoencoder's ONNX graph: "features" -> "anomaly_score" [N, 1].
    anomaly_onnx_bytes: bytes = b""
    # The Handbook's random-forest baseline and the autoencoder, on the same test rows as `metrics`.
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    anomaly_metrics: dict[str, float] = field(default_factory=dict)
    baseline_params: dict[str, Any] = field(default_factory=dict)
    anomaly_params: dict[str, Any] = field(default_factory=dict)
    # ReferenceProfile-shaped dict: {"histograms": [{"feature", "bin_edges", "frequencies"}], "rows"}.
    reference_profile: dict[str, Any] = field(default_factory=dict)
    # Period name -> "start/end" (ISO 8601 UTC, end exclusive), as RegisterModelRequest.data_split.
    data_split: dict[str, str] = field(default_factory=dict)
    # For the model card: test precision-recall curves ({"precision": [...], "recall": [...]}) and gains.
    pr_curve: dict[str, list[float]] = field(default_factory=dict)
    baseline_pr_curve: dict[str, list[float]] = field(default_factory=dict)
    anomaly_pr_curve: dict[str, list[float]] = field(default_factory=dict)
    feature_importance: dict[str, float] = field(default_factory=dict)

    @property
    def anomaly_sha256(self) -> str:
        return hashlib.sha256(self.anomaly_onnx_bytes).hexdigest()


@dataclass(frozen=True)
class TimeSplit:
    """Row masks and the UTC day boundaries [start, end) of each period."""

    train: np.ndarray
    test: np.ndarray
    bounds: dict[str, str]

    @property
    def periods(self) -> dict[str, str]:
        """Period name -> "start/end" (end exclusive)."""
        b = self.bounds
        return {
            "warmup": f"{b['warmup_start']}/{b['train_start']}",
            "train": f"{b['train_start']}/{b['delay_start']}",
            "delay": f"{b['delay_start']}/{b['test_start']}",
            "test": f"{b['test_start']}/{b['test_end']}",
        }


def time_split(tx_time: pd.Series, train_days: int, delay_days: int, test_days: int) -> TimeSplit:
    """Split by UTC day, counted back from the last day present (see the module docstring).

    Raises:
        ValueError: If the data spans fewer days than train + delay + test.
    """
    first_day, last_day = tx_time.min().floor("D"), tx_time.max().floor("D")
    test_end = last_day + DAY
    test_start = test_end - test_days * DAY
    train_end = test_start - delay_days * DAY
    train_start = train_end - train_days * DAY
    if train_start < first_day:
        span = (test_end - first_day) // DAY
        raise ValueError(f"data spans {span} days; the split needs {train_days + delay_days + test_days}")
    train = ((tx_time >= train_start) & (tx_time < train_end)).to_numpy()
    test = ((tx_time >= test_start) & (tx_time < test_end)).to_numpy()
    bounds = {
        "warmup_start": first_day.isoformat(),
        "train_start": train_start.isoformat(),
        "delay_start": train_end.isoformat(),
        "test_start": test_start.isoformat(),
        "test_end": test_end.isoformat(),
    }
    return TimeSplit(train, test, bounds)


def _stream(df: pd.DataFrame, card_key: Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
    located = "terminal_lat" in df and "terminal_lon" in df
    return pd.DataFrame(
        {
            "tx_id": df["tx_id"].astype(str),
            "tx_time": df["tx_time"],
            "card_token": card_key(df).astype(str),
            "terminal_id": df["terminal_id"].astype(str),
            "amount_minor": df["amount_minor"].astype(np.int64),
            "is_fraud": df["is_fraud"].astype(np.int64),
            "terminal_lat": df["terminal_lat"].astype(np.float64) if located else np.nan,
            "terminal_lon": df["terminal_lon"].astype(np.float64) if located else np.nan,
            **({"label_time": df["label_time"]} if "label_time" in df else {}),
        }
    )


def train(
    df: pd.DataFrame,
    *,
    card_key: Callable[[pd.DataFrame], pd.Series] = customer_card_key,
    train_days: int = 21,
    delay_days: int = 7,
    test_days: int = 7,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    decline_precision: float = 0.9,
    review_precision: float = 0.5,
) -> TrainResult:
    """Train, export and evaluate our model, the random-forest baseline and the autoencoder.

    Args:
        df: Columns tx_id, tx_time (UTC), terminal_id, amount_minor, is_fraud, plus what `card_key` reads.
        card_key: Maps the frame to the card key features are grouped by (a token, never a PAN).
        train_days: Days of training data.
        delay_days: Days between training and test whose labels are assumed unknown at training time.
        test_days: Days of test data (the last days of `df`).
        seed: Seed of all three models.
        params: Overrides of DEFAULT_PARAMS.
        decline_precision: Test-set precision at which the decline threshold is set.
        review_precision: Test-set precision at which the review threshold is set (capped at decline).

    Returns:
        The ONNX models with their lineage, test metrics (ours and the autoencoder's computed on onnxruntime
        scores, i.e. what is deployed) and thresholds. The thresholds are the lowest scores whose test
        precision reaches the targets, so the reported metrics and the thresholds share one test set:
        optimistic, and to be re-checked on fresh data before promotion.
    """
    started = time.perf_counter()
    stream = _stream(df, card_key)
    features = batch_features(stream, labels=known_labels(stream))
    split = time_split(stream["tx_time"], train_days, delay_days, test_days)
    labels = stream["is_fraud"].to_numpy()
    train_x, train_y = features[split.train], labels[split.train]
    test_x, test_y = features[split.test], labels[split.test]
    test_days_index = stream["tx_time"][split.test].dt.floor("D").to_numpy()
    test_cards = stream["card_token"].to_numpy()[split.test]

    model_params = {**DEFAULT_PARAMS, "random_state": seed, **(params or {})}
    model = lgb.LGBMClassifier(**model_params)
    model.fit(train_x, train_y, feature_name=list(FEATURE_NAMES))
    model_bytes = to_onnx(model, N_FEATURES)
    session = onnx_session(model_bytes)
    test_scores = predict_onnx(session, test_x)
    decline = metrics.threshold_for_precision(test_y, test_scores, decline_precision)
    review = min(metrics.threshold_for_precision(test_y, test_scores, review_precision), decline)
    result_metrics = {
        **metrics.evaluate(test_y, test_scores, test_days_index, test_cards),
        "parity_max_abs_diff": parity_max_abs_diff(model, model_bytes, features),
        "parity_rows": float(len(features)),
        "train_rows": float(split.train.sum()),
        "test_rows": float(split.test.sum()),
        "train_fraud_rate": float(train_y.mean()),
        "test_fraud_rate": float(test_y.mean()),
    }
    explainer_text = float32_exact_booster(model.booster_).model_to_string()

    rf_started = time.perf_counter()
    forest = baseline.train_random_forest(baseline.handbook_columns(train_x), train_y, seed)
    rf_scores = baseline.predict_random_forest(forest, baseline.handbook_columns(test_x))
    baseline_metrics = {
        **metrics.evaluate(test_y, rf_scores, test_days_index, test_cards),
        "train_seconds": time.perf_counter() - rf_started,
    }

    ae_started = time.perf_counter()
    autoencoder = anomaly.train_autoencoder(train_x[train_y == 0], seed)
    anomaly_bytes = anomaly.to_onnx(autoencoder, N_FEATURES)
    ae_scores = anomaly.predict_onnx(anomaly_bytes, test_x)
    anomaly_metrics = {
        **metrics.evaluate(test_y, ae_scores, test_days_index, test_cards),
        **anomaly.parity(autoencoder, anomaly_bytes, features),
        "train_rows": float((train_y == 0).sum()),
        "train_seconds": time.perf_counter() - ae_started,
    }
    result_metrics["train_seconds"] = time.perf_counter() - started

    return TrainResult(
        model_onnx_bytes=model_bytes,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        metrics=result_metrics,
        feature_names=FEATURE_NAMES,
        feature_set_version=FEATURE_SET_VERSION,
        params={**model_params, "train_days": train_days, "delay_days": delay_days, "test_days": test_days},
        dataset_sha256=dataset_sha256(stream, list(DATASET_COLUMNS)),
        thresholds={"review": review, "decline": decline},
        split=split.bounds,
        explainer_model_text=explainer_text,
        anomaly_onnx_bytes=anomaly_bytes,
        baseline_metrics=baseline_metrics,
        anomaly_metrics=anomaly_metrics,
        baseline_params={
            "model": "RandomForestClassifier",
            **baseline.BASELINE_PARAMS,
            "random_state": seed,
            "features": list(HANDBOOK_FEATURES),
        },
        anomaly_params={"model": "MLPRegressor autoencoder", **anomaly.ANOMALY_PARAMS, "random_state": seed},
        reference_profile=reference_profile(train_x, FEATURE_NAMES, predict_onnx(session, train_x)),
        data_split=split.periods,
        pr_curve=metrics.pr_curve_points(test_y, test_scores),
        baseline_pr_curve=metrics.pr_curve_points(test_y, rf_scores),
        anomaly_pr_curve=metrics.pr_curve_points(test_y, ae_scores),
        feature_importance=feature_importance(explainer_text),
    )
