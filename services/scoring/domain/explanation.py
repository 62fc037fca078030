"""Reason codes from per-feature contributions (tree SHAP values from the GBDT library itself)."""

from __future__ import annotations

from collections.abc import Sequence

from fraud.common.v1 import decision_pb2 as common

TOP_REASONS = 3


def reason_codes(
    names: Sequence[str], values: Sequence[float], contributions: Sequence[float], top: int = TOP_REASONS
) -> list[common.ReasonCode]:
    """The features that pushed the score up the most (positive log-odds contributions), strongest first."""
    ranked = sorted((i for i, c in enumerate(contributions) if c > 0), key=lambda i: (-contributions[i], names[i]))
    return [
        common.ReasonCode(
            code=f"{names[i].upper()}_RAISED_RISK",
            feature=names[i],
            contribution=float(contributions[i]),
            description=f"{names[i]}={values[i]:.4g} raised the fraud log-odds by {contributions[i]:+.3f}",
        )
        for i in ranked[:top]
    ]
