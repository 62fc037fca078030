"""Composition root of the scoring service: fold MODELS, connect Triton, serve ScoreFeatures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from fraudshared import subjects
from fraudshared.config import EnvConfig, env_field
from fraudshared.events.follow import follow
from fraudshared.events.once import OnceLog
from fraudshared.grpc_server import ServicerSpec
from fraudshared.service import ServiceContext
from services.scoring.adapters.event_log import MODELS, JetStreamPredictionLog, catalog_folder
from services.scoring.adapters.triton_runner import TritonRunner
from services.scoring.domain.catalog import ModelCatalog
from services.scoring.entrypoints.grpc_servicer import ScoringServicer
from services.scoring.service_layer.handlers import ScoringDeps


@dataclass(frozen=True)
class ScoringConfig(EnvConfig):
    """Scoring settings (see docs/config.md)."""

    triton_grpc_url: str = env_field("FRAUD_TRITON_GRPC_URL", "127.0.0.1:8001")
    inference_timeout_s: float = env_field("FRAUD_SCORING_INFERENCE_TIMEOUT_S", 0.5)


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    config = ScoringConfig.from_env()
    catalog = ModelCatalog()
    subscription = await follow(ctx.js, ctx.store, MODELS, subjects.MODELS_ALL, catalog_folder(catalog))
    runner = TritonRunner(config.triton_grpc_url)
    ctx.on_shutdown += [subscription.unsubscribe, runner.close]
    deps = ScoringDeps(
        catalog=catalog,
        runner=runner,
        predictions=JetStreamPredictionLog(OnceLog(ctx.js, ctx.store, source="/fraud/scoring")),
        inference_timeout_s=config.inference_timeout_s,
    )
    full_name = scoring.DESCRIPTOR.services_by_name["ScoringService"].full_name
    return [(scoring_grpc.add_ScoringServiceServicer_to_server, ScoringServicer(deps), full_name)]
