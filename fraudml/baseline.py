"""The Fraud Detection Handbook's random-forest baseline, trained on the same split, on the Handbook's features.

Its features are the Handbook's own (ch. 3.4: amount, weekend, night, the card's count and mean amount over
1/7/30 days, the terminal's delayed count and risk over 1/7/30 days), all part of our feature set, computed
by the same engine: the baseline is the Handbook's pipeline, ours adds what card-v2 adds to it.

Parameters follow the Handbook's model selection (ch. 5.3): 100 trees, and a maximum depth of 20, where its
performance plateaus (10 to 20 did best there); everything else is scikit-learn's default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from fraudshared.features import FEATURE_NAMES, HANDBOOK_FEATURES

BASELINE_PARAMS: dict[str, Any] = {"n_estimators": 100, "max_depth": 20, "n_jobs": -1}
_COLUMNS = [FEATURE_NAMES.index(name) for name in HANDBOOK_FEATURES]


def handbook_columns(features: np.ndarray) -> np.ndarray:
    """The Handbook's features, in HANDBOOK_FEATURES order, out of a card-v2 matrix."""
    return features[:, _COLUMNS]


def train_random_forest(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> RandomForestClassifier:
    """Fit the baseline forest (deterministic for a seed, whatever n_jobs)."""
    return RandomForestClassifier(**BASELINE_PARAMS, random_state=seed).fit(features, labels)


def predict_random_forest(model: RandomForestClassifier, features: np.ndarray) -> np.ndarray:
    """Fraud probabilities [N], bit-reproducible.

    With several jobs, scikit-learn adds the trees' votes in thread completion order, which changes the last
    bit of a score from run to run; one job sums them in tree order (training stays parallel: each tree's
    randomness comes from the seed, not from the thread).
    """
    model.set_params(n_jobs=1)
    return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)
