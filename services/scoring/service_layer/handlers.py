"""ScoreFeatures: champion through Triton, thresholds, PredictionMade; safe mode when no model answers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared.telemetry import get_logger
from services.scoring.domain.catalog import ModelCatalog
from services.scoring.domain.decision import decide, safe_mode_reason, threshold_reasons
from services.scoring.service_layer.ports import InferenceError, ModelRunner, PredictionLog

SCHEMA_VERSION = 1
SAFE_MODE_THRESHOLDS = common.Thresholds(review=0.0, decline=2.0)  # every safe-mode decision is REVIEW
log = get_logger(__name__)


@dataclass
class ScoringDeps:
    catalog: ModelCatalog
    runner: ModelRunner
    predictions: PredictionLog
    inference_timeout_s: float = 0.5


async def score_features(request: scoring.ScoreFeaturesRequest, deps: ScoringDeps) -> scoring.ScoreFeaturesResponse:
    """Decide one transaction from its feature vector and record the decision once."""
    prediction = events.PredictionMade(
        schema_version=SCHEMA_VERSION,
        transaction_id=request.transaction_id,
        card_token=request.card_token,
        feature_set_version=request.feature_set_version,
        feature_values=request.values,
        event_time=request.event_time,
    )
    champion = deps.catalog.champion
    why = "no champion model is deployed"
    if champion is not None and champion.feature_set_version != request.feature_set_version:
        why = f"champion expects feature set {champion.feature_set_version}, got {request.feature_set_version}"
    elif champion is not None:
        try:
            score = await deps.runner.score(champion.triton_model_name, request.values, deps.inference_timeout_s)
            if not (math.isfinite(score) and 0.0 <= score <= 1.0):
                raise InferenceError(f"model returned an invalid score {score!r}")
        except InferenceError as exc:
            why = f"Triton failed: {exc}"
        else:
            decision = decide(score, champion.thresholds)
            prediction.model.CopyFrom(champion.ref())
            prediction.thresholds.CopyFrom(champion.thresholds)
            prediction.score = score
            prediction.decision = decision
            prediction.reason_codes.extend(threshold_reasons(decision, score, champion.thresholds))
            prediction.scoring_path = common.SCORING_PATH_TRITON
    if prediction.scoring_path == common.SCORING_PATH_UNSPECIFIED:
        log.warning("safe mode decision transaction_id=%s reason=%s", request.transaction_id, why)
        prediction.thresholds.CopyFrom(SAFE_MODE_THRESHOLDS)
        prediction.decision = common.DECISION_REVIEW
        prediction.reason_codes.append(safe_mode_reason(why))
        prediction.scoring_path = common.SCORING_PATH_SAFE_MODE_RULES
        prediction.degraded = True
    prediction.decided_at.FromDatetime(datetime.now(UTC))
    recorded = await deps.predictions.append_prediction(prediction)
    final = recorded if recorded is not None else prediction
    return scoring.ScoreFeaturesResponse(
        decision=final.decision,
        score=final.score,
        reason_codes=final.reason_codes,
        model=final.model,
        thresholds=final.thresholds,
        scoring_path=final.scoring_path,
        degraded=final.degraded,
    )
