"""Evaluation metrics for card fraud: threshold-free (AUC ROC, AP) and operational (card precision@k)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def auc_roc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, the area under the precision-recall curve (NaN when there is no fraud)."""
    return float(average_precision_score(labels, scores)) if np.any(labels) else float("nan")


def card_precision_at_k(
    days: np.ndarray, cards: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int = 100
) -> tuple[float, list[float]]:
    """Card precision@k per day, as investigators work: each day, the k cards with the highest score.

    A card's daily score is its highest transaction score, and it counts as fraudulent that day if any of its
    transactions that day is fraud; precision is divided by k even on a day with fewer than k cards (as in the
    Fraud Detection Handbook), so small data sets read low.

    Returns:
        The mean over days and the per-day values (in day order).
    """
    frame = pd.DataFrame({"day": days, "card": cards, "label": labels, "score": scores})
    per_card = frame.groupby(["day", "card"], sort=True).agg(score=("score", "max"), label=("label", "max"))
    per_day = [
        float(group.nlargest(k, "score")["label"].sum()) / k for _, group in per_card.groupby(level="day", sort=True)
    ]
    return (float(np.mean(per_day)) if per_day else float("nan")), per_day


def threshold_for_precision(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The lowest score threshold t at which precision of (score >= t) reaches `target`.

    Returns 1.0 + a hair (never fires) when no threshold reaches the target, so an unreachable target degrades
    to "no automatic action" rather than to acting on everything.
    """
    if not np.any(labels):
        return float(np.nextafter(np.float32(1.0), np.float32(2.0)))
    precision, _, thresholds = precision_recall_curve(labels, scores)
    reached = np.flatnonzero(precision[:-1] >= target)  # the last precision point has no threshold
    if len(reached) == 0:
        return float(np.nextafter(np.float32(1.0), np.float32(2.0)))
    return float(thresholds[reached[0]])


def evaluate(labels: np.ndarray, scores: np.ndarray, days: np.ndarray, cards: np.ndarray) -> dict[str, float]:
    """The three headline metrics of a model on one test set: AUC ROC, average precision, card precision@100."""
    cp_at_100, _ = card_precision_at_k(days, cards, labels, scores, k=100)
    return {
        "auc_roc": auc_roc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "card_precision_at_100": cp_at_100,
    }


def pr_curve_points(labels: np.ndarray, scores: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """The precision-recall curve, thinned to at most `max_points` points (ends kept), for plots and reports."""
    if not np.any(labels):
        return {"precision": [], "recall": []}
    precision, recall, _ = precision_recall_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(precision) - 1, min(max_points, len(precision))).round().astype(np.int64))
    return {"precision": [float(x) for x in precision[keep]], "recall": [float(x) for x in recall[keep]]}
