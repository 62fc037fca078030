"""When scoring is ready: every deciding model answers a probe on the top rung it can use.

The deciding models are the champion and the canary (the shadow never decides, and may lag). Each gets a probe
inference (a vector of zeros) in Triton. When Triton is live, the model must answer there: a model Triton lacks
(a restarted, empty Triton before governance reloads it) is not ready, so `fraudctl up` returns only when
decisions go through Triton. When Triton is down, the in-process ONNX copy (sha256 checked when fetched) must
answer instead: decisions are then made, flagged degraded. With no model deployed at all scoring is ready:
there is nothing to load, and every decision is a flagged safe-mode REVIEW.
"""

from __future__ import annotations

import math

from services.scoring.domain.catalog import ServingModel
from services.scoring.service_layer.handlers import ScoringDeps
from services.scoring.service_layer.ports import InferenceError

PROBE_TIMEOUT_S = 1.0


def _usable(score: float | None) -> bool:
    return score is not None and math.isfinite(score) and 0.0 <= score <= 1.0


async def why_not_ready(deps: ScoringDeps) -> str | None:
    """None when every deciding model answers on its top available rung, else the first reason it does not.

    Also asks for the in-process copy of every serving model again, so one whose fetch failed (governance was
    not up yet) is retried at each check instead of staying missing.
    """
    if deps.local is not None:
        for model in deps.catalog.serving():
            deps.local.prepare(model)
    triton_live: bool | None = None
    for model in (deps.catalog.champion, deps.catalog.canary):
        if model is None:
            continue
        probe = [0.0] * len(model.feature_names)
        failure = await _triton_failure(deps, model, probe)
        if failure is None:
            continue
        if triton_live is None:
            triton_live = await deps.runner.live(PROBE_TIMEOUT_S)
        if triton_live:
            return f"{model.name} {model.version} does not answer in Triton ({failure})"
        if deps.local is None or not _usable(deps.local.score(model.artifact_sha256, probe)):
            return f"Triton is down and no in-process copy of {model.name} {model.version} answers yet"
    return None


async def _triton_failure(deps: ScoringDeps, model: ServingModel, probe: list[float]) -> str | None:
    try:
        score = await deps.runner.score(model.triton_model_name, probe, PROBE_TIMEOUT_S)
    except InferenceError as exc:
        return str(exc)
    return None if _usable(score) else f"invalid score {score!r}"
