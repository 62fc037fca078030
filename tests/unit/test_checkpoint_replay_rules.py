"""The replay's restated decision rules agree with what scoring runs (services/scoring/domain)."""

from __future__ import annotations

import itertools

from fraud.common.v1 import decision_pb2 as common
from fraudshared.audit.decision_rules import decide, decision_name, expected_reason_codes
from services.scoring.domain import decision as scoring
from services.scoring.domain.explanation import reason_codes

NAMES = ["amount", "is_night", "card_tx_count_1d", "terminal_tx_count_7d"]


def test_decisions_agree_on_every_boundary() -> None:
    scores = [0.0, 0.2999999, 0.3, 0.30000001, 0.5, 0.7, 0.71, 1.0]
    for score, (review, decline) in itertools.product(scores, [(0.3, 0.7), (0.5, 0.5), (0.0, 2.0)]):
        thresholds = common.Thresholds(review=review, decline=decline)
        assert decide(score, review, decline) == scoring.decide(score, thresholds), (score, review, decline)


def test_reason_codes_agree_with_scoring_in_order() -> None:
    thresholds = common.Thresholds(review=0.3, decline=0.7)
    values = [120.0, 1.0, 4.0, 30.0]
    for score, contributions in [
        (0.9, [0.5, -0.1, 0.5, 0.2]),  # tie broken by name
        (0.4, [0.0, 0.3, -0.2, 0.1]),
        (0.1, [0.9, 0.9, 0.9, 0.9]),  # APPROVE: no reasons
        (0.95, [-1.0, -1.0, -1.0, -1.0]),
    ]:
        decision = scoring.decide(score, thresholds)
        recorded = scoring.threshold_reasons(decision, score, thresholds)
        if decision != common.DECISION_APPROVE:
            recorded += reason_codes(NAMES, values, contributions)
        assert expected_reason_codes(decision, NAMES, contributions) == [r.code for r in recorded]
    assert expected_reason_codes(common.DECISION_REVIEW, NAMES, None) == ["MODEL_SCORE_AT_REVIEW_THRESHOLD"]
    assert decision_name(common.DECISION_DECLINE) == "DECLINE"
