"""Composition root of the features service: rebuild state from the FEATURES stream, then serve."""

from __future__ import annotations

from collections.abc import Sequence

from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from fraudshared.events.once import OnceLog
from fraudshared.grpc_server import ServicerSpec
from fraudshared.service import ServiceContext
from fraudshared.telemetry import get_logger
from services.features.adapters.event_log import JetStreamFeatureLog
from services.features.entrypoints.grpc_servicer import FeatureServicer
from services.features.service_layer.handlers import FeatureState, rebuild

log = get_logger(__name__)


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    feature_log = JetStreamFeatureLog(OnceLog(ctx.js, ctx.store, source="/fraud/features"), ctx.store)
    state = FeatureState()
    applied = await rebuild(state, feature_log)
    log.info("features state rebuilt from %d events, %d cards", applied, len(state.engine.cards))
    full_name = features.DESCRIPTOR.services_by_name["FeatureService"].full_name
    return [(features_grpc.add_FeatureServiceServicer_to_server, FeatureServicer(state, feature_log), full_name)]
