"""Score -> decision: thresholds of the deciding model version, and the reasons a caller sees."""

from __future__ import annotations

from fraud.common.v1 import decision_pb2 as common

SAFE_MODE = "SAFE_MODE"


def decide(score: float, thresholds: common.Thresholds) -> int:
    """APPROVE below review, REVIEW from review, DECLINE from decline (both inclusive)."""
    if score >= thresholds.decline:
        return common.DECISION_DECLINE
    if score >= thresholds.review:
        return common.DECISION_REVIEW
    return common.DECISION_APPROVE


def threshold_reasons(decision: int, score: float, thresholds: common.Thresholds) -> list[common.ReasonCode]:
    """The score reason for a REVIEW or DECLINE (feature contributions come with the explainer)."""
    if decision == common.DECISION_DECLINE:
        return [
            common.ReasonCode(
                code="MODEL_SCORE_AT_DECLINE_THRESHOLD",
                description=f"fraud score {score:.4f} >= decline threshold {thresholds.decline:.4f}",
            )
        ]
    if decision == common.DECISION_REVIEW:
        return [
            common.ReasonCode(
                code="MODEL_SCORE_AT_REVIEW_THRESHOLD",
                description=f"fraud score {score:.4f} >= review threshold {thresholds.review:.4f}",
            )
        ]
    return []


def safe_mode_reason(why: str) -> common.ReasonCode:
    """Reason attached to every safe-mode decision."""
    return common.ReasonCode(code=SAFE_MODE, description=f"no model could score: {why}; decided by safe-mode rules")
