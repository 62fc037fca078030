"""Composition root of the ingest service: secrets -> tokenizer, JetStream log, features/scoring clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudshared import subjects
from fraudshared.config import ConfigError, EnvConfig, env_field
from fraudshared.events.envelope import Envelope
from fraudshared.events.follow import follow
from fraudshared.events.once import OnceLog
from fraudshared.grpc_server import ServicerSpec
from fraudshared.pan_token import TOKEN_KEY_NAME, TOKEN_KEY_PATH
from fraudshared.privacy import subject_key_store_from_env
from fraudshared.privacy.resolver import SubjectResolver
from fraudshared.rpc import RpcClient
from fraudshared.secrets import secret_store_from_env
from fraudshared.service import ServiceContext
from services.ingest.adapters.erasure_log import JetStreamErasureLog
from services.ingest.adapters.event_log import JetStreamTransactionLog
from services.ingest.adapters.grpc_clients import (
    GrpcFeaturesClient,
    GrpcScoringClient,
    SequentialDecisionPath,
    channel,
)
from services.ingest.adapters.label_log import JetStreamLabelLog
from services.ingest.adapters.nats_clients import NatsDecisionPath
from services.ingest.domain.pan import PanTokenizer
from services.ingest.entrypoints.grpc_servicer import IngestServicer
from services.ingest.service_layer.handlers import IngestDeps
from services.ingest.service_layer.ports import DecisionPath


@dataclass(frozen=True)
class IngestConfig(EnvConfig):
    """Ingest settings (see docs/config.md)."""

    features_addr: str = env_field("FRAUD_FEATURES_ADDR", "127.0.0.1:50052")
    scoring_addr: str = env_field("FRAUD_SCORING_ADDR", "127.0.0.1:50053")
    downstream_timeout_s: float = env_field("FRAUD_INGEST_DOWNSTREAM_TIMEOUT_S", 2.0)
    # "nats" (request-reply, the default: ~8x less CPU per hop, measured) or "grpc" (FRAUD_*_ADDR).
    internal_transport: str = env_field("FRAUD_INTERNAL_TRANSPORT", "nats")


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    config = IngestConfig.from_env()
    key_hex, key_version = secret_store_from_env(service=ctx.config.service_name).get_version(
        TOKEN_KEY_PATH, TOKEN_KEY_NAME
    )
    tokenizer = PanTokenizer(bytes.fromhex(key_hex), key_version)
    decisions: DecisionPath
    if config.internal_transport == "grpc":
        features_channel, scoring_channel = channel(config.features_addr), channel(config.scoring_addr)
        ctx.on_shutdown += [features_channel.close, scoring_channel.close]
        decisions = SequentialDecisionPath(GrpcFeaturesClient(features_channel), GrpcScoringClient(scoring_channel))
    elif config.internal_transport == "nats":  # features forwards its vector to scoring, which answers us
        decisions = NatsDecisionPath(RpcClient(ctx.nc))
    else:
        raise ConfigError(f"FRAUD_INTERNAL_TRANSPORT must be nats or grpc, got {config.internal_transport!r}")
    key_store = subject_key_store_from_env(var_dir=ctx.config.var_dir)
    once = OnceLog(ctx.js, ctx.store, source="/fraud/ingest")
    deps = IngestDeps(
        log=JetStreamTransactionLog(once),
        decisions=decisions,
        tokenizer=tokenizer,
        subjects=SubjectResolver(key_store),
        downstream_timeout_s=config.downstream_timeout_s,
        labels=JetStreamLabelLog(ctx.js, ctx.store, source="/fraud/ingest"),
        erasures=JetStreamErasureLog(once),
        roles_of=ctx.grants.roles_of,
    )

    async def on_erased(seq: int, envelope: Envelope) -> None:  # an erasure (maybe another instance's): drop the key
        key_store.drop_cached(envelope.payload(privacy_events.SubjectErased).subject_id)

    erasures = await follow(ctx.js, ctx.store, "PRIVACY", subjects.PRIVACY_ALL, on_erased, reader="ingest")
    ctx.on_shutdown.append(erasures.stop)
    full_name = ingest.DESCRIPTOR.services_by_name["IngestService"].full_name
    return [(ingest_grpc.add_IngestServiceServicer_to_server, IngestServicer(deps), full_name)]
