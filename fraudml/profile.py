"""The reference profile drift is measured against: per-feature and score histograms of the training set.

Shaped like fraud.events.v1.ReferenceProfile / FeatureHistogram (plain dicts, so json_format.ParseDict
fills the proto): bins are [edge_i, edge_i+1), the last one closed; frequencies sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_BINS = 10


def histogram(feature: str, values: np.ndarray, bins: int = N_BINS) -> dict[str, Any]:
    """Quantile bins (deciles by default) of `values`.

    Duplicate quantiles (a feature that is often 0) collapse into one edge. A feature with at most `bins`
    distinct values gets one bin per value instead (the last edge is max + 1), so a 0/1 flag keeps two
    bins rather than one closed [0, 1] bin that would hide any shift between them.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"feature": feature, "bin_edges": [0.0, 1.0], "frequencies": [1.0]}
    distinct = np.unique(v)
    if len(distinct) <= bins:
        edges = np.append(distinct, distinct[-1] + 1.0)
    else:
        edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, bins + 1)))
    counts, _ = np.histogram(v, bins=edges)
    return {
        "feature": feature,
        "bin_edges": [float(e) for e in edges],
        "frequencies": [float(c) for c in counts / counts.sum()],
    }


def reference_profile(features: np.ndarray, names: Sequence[str], scores: np.ndarray) -> dict[str, Any]:
    """One histogram per feature column (in `names` order) plus one named "score" for the model output."""
    histograms = [histogram(name, features[:, i]) for i, name in enumerate(names)]
    histograms.append(histogram("score", scores))
    return {"histograms": histograms, "rows": len(features)}
