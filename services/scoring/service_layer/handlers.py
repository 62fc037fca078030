"""ScoreFeatures: route (champion or canary), score down the fallback ladder, explain, record once.

Ladder: Triton (behind a circuit breaker, deadline from the caller's budget) -> the same ONNX in process
(sha256 checked; the decision is flagged degraded, as Triton failed) -> safe-mode rules (REVIEW, degraded,
reason SAFE_MODE). When Triton answers again, the breaker's half-open probe sends traffic back to it. Shadow
models are scored after the answer, off the path. `fraud_scoring_decisions_total` counts decisions by path.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiobreaker import CircuitBreaker, CircuitBreakerError
from prometheus_client import Counter

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared.rpc import remaining
from fraudshared.subjects import card_key
from fraudshared.telemetry import get_logger
from services.scoring.domain.catalog import ModelCatalog, ServingModel
from services.scoring.domain.decision import decide, safe_mode_reason, threshold_reasons
from services.scoring.domain.explanation import reason_codes
from services.scoring.domain.routing import canary_bucket, deciding_model
from services.scoring.service_layer.ports import InferenceError, LocalModels, ModelRunner, PredictionLog

SCHEMA_VERSION = 1
RECORD_RESERVE_S = 0.01  # kept back from the caller's budget to append PredictionMade
SAFE_MODE_THRESHOLDS = common.Thresholds(review=0.0, decline=2.0)  # every safe-mode decision is REVIEW
MAX_SHADOW_IN_FLIGHT = 64
FALLBACKS = Counter("fraud_scoring_fallback_total", "Decisions that left a rung of the ladder", ["to", "reason"])
DECISIONS = Counter("fraud_scoring_decisions_total", "Decisions recorded, by scoring path", ["path"])
_DECISIONS_BY_PATH = {
    path: DECISIONS.labels(common.ScoringPath.Name(path).removeprefix("SCORING_PATH_").lower())
    for path in (common.SCORING_PATH_TRITON, common.SCORING_PATH_LOCAL_ONNX, common.SCORING_PATH_SAFE_MODE_RULES)
}
SHADOW_DROPPED = Counter("fraud_scoring_shadow_dropped_total", "Shadow scorings skipped because too many ran")
log = get_logger(__name__)


@dataclass
class ScoringDeps:
    catalog: ModelCatalog
    runner: ModelRunner
    predictions: PredictionLog
    local: LocalModels | None = None
    inference_timeout_s: float = 0.5
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(fail_max=5, name="triton"))
    shadow_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Overload policy "safe-mode": above this many decisions in flight, skip the model (0 = never).
    safe_mode_above: int = 0
    in_flight: int = 0


async def _triton(deps: ScoringDeps, model: ServingModel, values: Sequence[float], timeout: float) -> float:
    if timeout <= 0:
        raise InferenceError("no time left in the caller's budget")
    score = await deps.runner.score(model.triton_model_name, values, timeout)
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise InferenceError(f"model returned an invalid score {score!r}")
    return score


async def run_ladder(
    deps: ScoringDeps, model: ServingModel | None, request: scoring.ScoreFeaturesRequest, timeout: float
) -> tuple[float, int] | str:
    """(score, scoring path) from the first rung that answers, or why none could."""
    if model is None:
        return "no champion model is deployed"
    if model.feature_set_version != request.feature_set_version:
        return f"model expects feature set {model.feature_set_version}, got {request.feature_set_version}"
    try:
        return await deps.breaker.call_async(_triton, deps, model, request.values, timeout), common.SCORING_PATH_TRITON
    except (InferenceError, CircuitBreakerError) as exc:
        reason = "breaker_open" if isinstance(exc, CircuitBreakerError) else "error"
        why = f"Triton unavailable ({exc})"
    local = deps.local.score(model.artifact_sha256, request.values) if deps.local is not None else None
    if local is not None and math.isfinite(local) and 0.0 <= local <= 1.0:
        FALLBACKS.labels("local_onnx", reason).inc()
        return local, common.SCORING_PATH_LOCAL_ONNX
    FALLBACKS.labels("safe_mode", reason).inc()
    return f"{why} and no in-process copy of {model.name} {model.version} is loaded"


def _explain(deps: ScoringDeps, model: ServingModel, request: scoring.ScoreFeaturesRequest) -> list[common.ReasonCode]:
    if deps.local is None or not model.explainer_sha256:
        return []
    contributions = deps.local.contributions(model.explainer_sha256, request.values)
    if contributions is None:
        return []
    return reason_codes(model.feature_names, request.values, contributions)


async def score_features(
    request: scoring.ScoreFeaturesRequest, deps: ScoringDeps, deadline: float | None = None
) -> scoring.ScoreFeaturesResponse:
    """Decide one transaction from its feature vector and record the decision once.

    `deadline` (epoch seconds) is the caller's; inference gets what is left of it minus the time needed to
    record the decision, capped by the configured inference timeout.
    """
    timeout = min(deps.inference_timeout_s, remaining(deadline, deps.inference_timeout_s) - RECORD_RESERVE_S)
    bucket = canary_bucket(card_key(request))
    model, is_canary = deciding_model(deps.catalog, bucket)
    prediction = events.PredictionMade(
        schema_version=SCHEMA_VERSION,
        transaction_id=request.transaction_id,
        card_token=request.card_token,
        subject_id=request.subject_id,
        feature_set_version=request.feature_set_version,
        feature_values=request.values,
        event_time=request.event_time,
        canary_bucket=bucket,
    )
    deps.in_flight += 1
    try:
        if deps.safe_mode_above and deps.in_flight > deps.safe_mode_above:
            FALLBACKS.labels("safe_mode", "overload").inc()
            outcome: tuple[float, int] | str = f"scoring overloaded ({deps.in_flight} decisions in flight)"
        else:
            outcome = await run_ladder(deps, model, request, timeout)
    finally:
        deps.in_flight -= 1
    if isinstance(outcome, str) or model is None:
        log.warning("safe mode decision transaction_id=%s reason=%s", request.transaction_id, outcome)
        prediction.thresholds.CopyFrom(SAFE_MODE_THRESHOLDS)
        prediction.decision = common.DECISION_REVIEW
        prediction.reason_codes.append(safe_mode_reason(str(outcome)))
        prediction.scoring_path = common.SCORING_PATH_SAFE_MODE_RULES
        prediction.degraded = True
    else:
        score, path = outcome
        decision = decide(score, model.thresholds)
        prediction.model.CopyFrom(model.ref())
        prediction.thresholds.CopyFrom(model.thresholds)
        prediction.score = score
        prediction.decision = decision
        prediction.scoring_path = path
        prediction.degraded = path != common.SCORING_PATH_TRITON  # Triton failed: callers and the monitor see it
        prediction.role = model_events.DEPLOYMENT_ROLE_CANARY if is_canary else model_events.DEPLOYMENT_ROLE_CHAMPION
        prediction.reason_codes.extend(threshold_reasons(decision, score, model.thresholds))
        if decision != common.DECISION_APPROVE:
            prediction.reason_codes.extend(_explain(deps, model, request))
    prediction.decided_at.FromDatetime(datetime.now(UTC))
    recorded = await deps.predictions.append_prediction(prediction)
    final = recorded if recorded is not None else prediction
    if recorded is None:
        counter = _DECISIONS_BY_PATH.get(prediction.scoring_path)
        if counter is not None:
            counter.inc()
        _score_shadow(deps, request)
    return scoring.ScoreFeaturesResponse(
        decision=final.decision,
        score=final.score,
        reason_codes=final.reason_codes,
        model=final.model,
        thresholds=final.thresholds,
        scoring_path=final.scoring_path,
        degraded=final.degraded,
    )


def _score_shadow(deps: ScoringDeps, request: scoring.ScoreFeaturesRequest) -> None:
    shadow = deps.catalog.shadow
    if shadow is None or shadow.feature_set_version != request.feature_set_version:
        return
    if len(deps.shadow_tasks) >= MAX_SHADOW_IN_FLIGHT:
        SHADOW_DROPPED.inc()
        return
    task = asyncio.ensure_future(_shadow(deps, shadow, request))
    deps.shadow_tasks.add(task)
    task.add_done_callback(deps.shadow_tasks.discard)


async def _shadow(deps: ScoringDeps, model: ServingModel, request: scoring.ScoreFeaturesRequest) -> None:
    try:
        score = await _triton(deps, model, request.values, deps.inference_timeout_s)
        event = events.ShadowScored(
            schema_version=SCHEMA_VERSION,
            transaction_id=request.transaction_id,
            card_token=request.card_token,
            subject_id=request.subject_id,
            model=model.ref(),
            score=score,
            decision=decide(score, model.thresholds),
            event_time=request.event_time,
        )
        await deps.predictions.append_shadow(event)
    except Exception as exc:  # the shadow never affects decisions; count and move on
        SHADOW_DROPPED.inc()
        log.warning("shadow scoring failed transaction_id=%s: %s", request.transaction_id, exc)
