"""Train the card-fraud gradient-boosted-trees model: time split, shared features, LightGBM, ONNX, evaluation.

The split follows card-fraud practice (Fraud Detection Handbook, ch. 5): counted back from the last day of
data, `test_days` of test, before them `delay_days` whose labels are not yet known when the model is trained
(the investigation delay), before those `train_days` of training; anything earlier only warms up the feature
state. Features are computed once over the whole time-ordered stream by the same engine the features service
runs, so test rows see the history an online scorer would have seen.
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

from fraudml import metrics
from fraudml.onnx_export import onnx_session, parity_max_abs_diff, predict_onnx, to_onnx
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES, batch_features

DAY = pd.Timedelta(days=1)
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 6,
    "num_leaves": 31,
    "learning_rate": 0.1,
    "min_child_samples": 20,
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


@dataclass(frozen=True)
class TimeSplit:
    """Row masks and the UTC day boundaries [start, end) of each period."""

    train: np.ndarray
    test: np.ndarray
    bounds: dict[str, str]


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


def dataset_sha256(df: pd.DataFrame, columns: list[str]) -> str:
    """SHA-256 over the named columns in row order, independent of pandas/pyarrow versions and file formats."""
    digest = hashlib.sha256()
    for name in columns:
        column = df[name]
        digest.update(name.encode() + b"\x00")
        if pd.api.types.is_datetime64_any_dtype(column):
            values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype("<i8")
            digest.update(values.tobytes())
        elif pd.api.types.is_integer_dtype(column):
            digest.update(column.to_numpy().astype("<i8").tobytes())
        else:
            digest.update("\x1f".join(column.astype(str)).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


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
    """Train, export and evaluate one model on labelled transactions.

    Args:
        df: Columns tx_id, tx_time (UTC), terminal_id, amount_minor, is_fraud, plus what `card_key` reads.
        card_key: Maps the frame to the card key features are grouped by (a token, never a PAN).
        train_days: Days of training data.
        delay_days: Days between training and test whose labels are assumed unknown at training time.
        test_days: Days of test data (the last days of `df`).
        seed: LightGBM seed.
        params: Overrides of DEFAULT_PARAMS.
        decline_precision: Test-set precision at which the decline threshold is set.
        review_precision: Test-set precision at which the review threshold is set (capped at decline).

    Returns:
        The ONNX model with its lineage, test metrics (computed on onnxruntime scores, i.e. what is
        deployed) and thresholds. The thresholds are the lowest scores whose test precision reaches the
        targets, so the reported metrics and the thresholds share one test set: optimistic, and to be
        re-checked on fresh data before promotion.
    """
    started = time.perf_counter()
    stream = pd.DataFrame(
        {
            "tx_id": df["tx_id"].astype(str),
            "tx_time": df["tx_time"],
            "card_token": card_key(df).astype(str),
            "terminal_id": df["terminal_id"].astype(str),
            "amount_minor": df["amount_minor"].astype(np.int64),
            "is_fraud": df["is_fraud"].astype(np.int64),
        }
    )
    features = batch_features(stream)
    split = time_split(stream["tx_time"], train_days, delay_days, test_days)
    labels = stream["is_fraud"].to_numpy()
    model_params = {**DEFAULT_PARAMS, "random_state": seed, **(params or {})}
    model = lgb.LGBMClassifier(**model_params)
    model.fit(features[split.train], labels[split.train])
    model_bytes = to_onnx(model, N_FEATURES)

    test_scores = predict_onnx(onnx_session(model_bytes), features[split.test])
    test_labels = labels[split.test]
    test_days_index = stream["tx_time"][split.test].dt.floor("D").to_numpy()
    cp_at_100, _ = metrics.card_precision_at_k(
        test_days_index, stream["card_token"].to_numpy()[split.test], test_labels, test_scores, k=100
    )
    decline = metrics.threshold_for_precision(test_labels, test_scores, decline_precision)
    review = min(metrics.threshold_for_precision(test_labels, test_scores, review_precision), decline)
    result_metrics = {
        "auc_roc": metrics.auc_roc(test_labels, test_scores),
        "average_precision": metrics.average_precision(test_labels, test_scores),
        "card_precision_at_100": cp_at_100,
        "parity_max_abs_diff": parity_max_abs_diff(model, model_bytes, features),
        "parity_rows": float(len(features)),
        "train_rows": float(split.train.sum()),
        "test_rows": float(split.test.sum()),
        "train_fraud_rate": float(labels[split.train].mean()),
        "test_fraud_rate": float(test_labels.mean()),
        "train_seconds": time.perf_counter() - started,
    }
    return TrainResult(
        model_onnx_bytes=model_bytes,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        metrics=result_metrics,
        feature_names=FEATURE_NAMES,
        feature_set_version=FEATURE_SET_VERSION,
        params={**model_params, "train_days": train_days, "delay_days": delay_days, "test_days": test_days},
        dataset_sha256=dataset_sha256(
            stream, ["tx_id", "tx_time", "card_token", "terminal_id", "amount_minor", "is_fraud"]
        ),
        thresholds={"review": review, "decline": decline},
        split=split.bounds,
    )
