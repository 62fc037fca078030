"""Per-decision explanations from the LightGBM model text stored with each version (TreeSHAP contributions).

For a row, contributions[j] is feature j's additive share of the raw margin (log-odds):
margin = bias + sum(contributions), and the probability is sigmoid(margin). A positive contribution pushed
the score towards fraud. Use the explainer text registered with the version (its thresholds are the ONNX
model's, see onnx_export.float32_exact_booster) and float32 features, so it explains the deployed score.
"""

from __future__ import annotations

from functools import lru_cache

import lightgbm as lgb
import numpy as np


@lru_cache(maxsize=8)
def _booster(explainer_model_text: str) -> lgb.Booster:
    return lgb.Booster(model_str=explainer_model_text)


def _raw_contributions(explainer_model_text: str, features: np.ndarray) -> np.ndarray:
    matrix = np.ascontiguousarray(np.atleast_2d(features), dtype=np.float32)
    return np.asarray(_booster(explainer_model_text).predict(matrix, pred_contrib=True), dtype=np.float64)


def contributions(explainer_model_text: str, features: np.ndarray) -> np.ndarray:
    """Per-feature contributions [N, n_features] to the raw margin (the bias column removed)."""
    return _raw_contributions(explainer_model_text, features)[:, :-1]


def bias(explainer_model_text: str, features: np.ndarray) -> np.ndarray:
    """The bias term [N] (the model's expected margin; the same for every row)."""
    return _raw_contributions(explainer_model_text, features)[:, -1]


def feature_importance(explainer_model_text: str) -> dict[str, float]:
    """Total split gain per feature, by feature name (the model card's importance plot)."""
    booster = _booster(explainer_model_text)
    gains = booster.feature_importance(importance_type="gain")
    return {name: float(g) for name, g in zip(booster.feature_name(), gains, strict=True)}
