"""The decision rules a replay re-applies, written down once more from the recorded inputs (pure).

They restate what scoring does (services/scoring/domain/decision.py and explanation.py) so that an auditor's
re-derivation does not run the code it audits; tests/unit/test_checkpoint_replay_rules.py checks that both agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from fraud.common.v1 import decision_pb2 as common

SCORE_TOLERANCE = 1e-6
TOP_REASONS = 3
SAFE_MODE_CODE = "SAFE_MODE"


def decide(score: float, review: float, decline: float) -> int:
    """APPROVE below ``review``, REVIEW from ``review``, DECLINE from ``decline`` (both inclusive)."""
    if score >= decline:
        return common.DECISION_DECLINE
    if score >= review:
        return common.DECISION_REVIEW
    return common.DECISION_APPROVE


def expected_reason_codes(
    decision: int, feature_names: Sequence[str], contributions: Sequence[float] | None
) -> list[str]:
    """Reason codes in recorded order: the threshold reason, then the top positive contributions (not on APPROVE)."""
    if decision == common.DECISION_APPROVE:
        return []
    codes = [
        "MODEL_SCORE_AT_DECLINE_THRESHOLD" if decision == common.DECISION_DECLINE else "MODEL_SCORE_AT_REVIEW_THRESHOLD"
    ]
    if contributions is not None:
        ranked = sorted(
            (i for i, c in enumerate(contributions) if c > 0), key=lambda i: (-contributions[i], feature_names[i])
        )
        codes += [f"{feature_names[i].upper()}_RAISED_RISK" for i in ranked[:TOP_REASONS]]
    return codes


def decision_name(decision: int) -> str:
    """``APPROVE`` / ``REVIEW`` / ``DECLINE`` / ``UNSPECIFIED``."""
    return common.Decision.Name(decision).removeprefix("DECISION_")
