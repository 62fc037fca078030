"""Composition root of the scoring service: fold MODELS, connect Triton, serve ScoreFeatures.

Ready (grpc.health.v1 "") when every deciding model answers a probe on its top rung (service_layer/readiness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from aiobreaker import CircuitBreaker

from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from fraudshared import subjects
from fraudshared.config import ConfigError, EnvConfig, env_field
from fraudshared.events.follow import follow
from fraudshared.events.once import OnceLog
from fraudshared.grpc_server import ServicerSpec
from fraudshared.rpc import RpcServer
from fraudshared.service import ServiceContext
from services.scoring.adapters.breaker_log import BreakerLog
from services.scoring.adapters.event_log import MODELS, JetStreamPredictionLog, catalog_folder
from services.scoring.adapters.local_models import LocalModels
from services.scoring.adapters.triton_runner import TritonRunner
from services.scoring.domain.catalog import ModelCatalog
from services.scoring.entrypoints.grpc_servicer import ScoringServicer
from services.scoring.service_layer.handlers import ScoringDeps, score_features
from services.scoring.service_layer.readiness import why_not_ready


@dataclass(frozen=True)
class ScoringConfig(EnvConfig):
    """Scoring settings (see docs/config.md)."""

    triton_grpc_url: str = env_field("FRAUD_TRITON_GRPC_URL", "127.0.0.1:8001")
    inference_timeout_s: float = env_field("FRAUD_SCORING_INFERENCE_TIMEOUT_S", 0.5)
    max_in_flight: int = env_field("FRAUD_SCORING_MAX_IN_FLIGHT", 256)
    governance_addr: str = env_field("FRAUD_GOVERNANCE_ADDR", "127.0.0.1:50054")
    # "shed": beyond max_in_flight answer RESOURCE_EXHAUSTED; "safe-mode": above safe_mode_above in flight,
    # answer recorded safe-mode REVIEW decisions without the model (and still shed beyond max_in_flight).
    overload_policy: str = env_field("FRAUD_SCORING_OVERLOAD_POLICY", "shed")
    safe_mode_above: int = env_field("FRAUD_SCORING_SAFE_MODE_ABOVE", 128)
    # Triton circuit breaker: open after this many consecutive failures, probe again after reset_s.
    breaker_failures: int = env_field("FRAUD_SCORING_BREAKER_FAILURES", 5)
    breaker_reset_s: float = env_field("FRAUD_SCORING_BREAKER_RESET_S", 5.0)
    # Micro-batching of Triton calls: at most this many vectors per call (1 = a call per vector), and at most
    # this many calls per model at once (vectors arriving meanwhile wait and go together in the next call).
    triton_batch_rows: int = env_field("FRAUD_SCORING_TRITON_BATCH_ROWS", 64)
    triton_calls_in_flight: int = env_field("FRAUD_SCORING_TRITON_CALLS_IN_FLIGHT", 2)


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    config = ScoringConfig.from_env()
    if config.overload_policy not in ("shed", "safe-mode"):
        raise ConfigError(f"FRAUD_SCORING_OVERLOAD_POLICY must be shed or safe-mode, got {config.overload_policy!r}")
    catalog = ModelCatalog()
    local = LocalModels(config.governance_addr)

    def prepare_local_copies() -> None:
        for model in catalog.serving():
            local.prepare(model)

    subscription = await follow(
        ctx.js, ctx.store, MODELS, subjects.MODELS_ALL, catalog_folder(catalog, prepare_local_copies), reader="scoring"
    )
    if not 1 <= config.triton_batch_rows <= 64 or config.triton_calls_in_flight < 1:
        raise ConfigError("FRAUD_SCORING_TRITON_BATCH_ROWS must be 1-64 and FRAUD_SCORING_TRITON_CALLS_IN_FLIGHT >= 1")
    runner = TritonRunner(config.triton_grpc_url, config.triton_batch_rows, config.triton_calls_in_flight)
    ctx.on_shutdown += [subscription.stop, runner.close, local.close]
    deps = ScoringDeps(
        catalog=catalog,
        runner=runner,
        local=local,
        predictions=JetStreamPredictionLog(OnceLog(ctx.js, ctx.store, source="/fraud/scoring")),
        inference_timeout_s=config.inference_timeout_s,
        safe_mode_above=config.safe_mode_above if config.overload_policy == "safe-mode" else 0,
        breaker=CircuitBreaker(
            fail_max=config.breaker_failures,
            timeout_duration=timedelta(seconds=config.breaker_reset_s),
            name="triton",
            listeners=[BreakerLog()],
        ),
    )
    ctx.readiness.add("models", partial(why_not_ready, deps))

    async def handle(request: scoring.ScoreFeaturesRequest, deadline: float | None) -> scoring.ScoreFeaturesResponse:
        return await score_features(request, deps, deadline)

    server = RpcServer(
        subjects.SCORING_RPC, scoring.ScoreFeaturesRequest, handle, config.max_in_flight, service="scoring"
    )
    subscription_rpc = await server.subscribe(ctx.nc, queue="scoring")
    ctx.on_shutdown += [subscription_rpc.unsubscribe, server.drain]
    full_name = scoring.DESCRIPTOR.services_by_name["ScoringService"].full_name
    return [(scoring_grpc.add_ScoringServiceServicer_to_server, ScoringServicer(deps), full_name)]
