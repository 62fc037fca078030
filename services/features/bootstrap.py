"""Composition root of the features service: rebuild state from the FEATURES stream, follow labels, serve."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from fraudshared import subjects
from fraudshared.config import ConfigError, EnvConfig, env_field
from fraudshared.decision_chain import score_request
from fraudshared.events.envelope import Envelope
from fraudshared.events.follow import follow
from fraudshared.events.once import OnceLog
from fraudshared.grpc_server import ServicerSpec
from fraudshared.rpc import Forward, RpcServer
from fraudshared.service import ServiceContext
from fraudshared.telemetry import get_logger
from services.features.adapters.event_log import JetStreamFeatureLog
from services.features.adapters.snapshots import FileSnapshotStore
from services.features.entrypoints.grpc_servicer import FeatureServicer
from services.features.service_layer.handlers import apply_label, compute_features, rebuild

log = get_logger(__name__)


@dataclass(frozen=True)
class FeaturesConfig(EnvConfig):
    """Features settings (see docs/config.md)."""

    # Card partitions this instance owns: "all", or e.g. "0-3" or "0,2,4,6". One owner per partition.
    partitions: str = env_field("FRAUD_FEATURES_PARTITIONS", "all")
    max_in_flight: int = env_field("FRAUD_FEATURES_MAX_IN_FLIGHT", 512)
    snapshot_every_s: float = env_field("FRAUD_FEATURES_SNAPSHOT_EVERY_S", 30.0)


def owned_partitions(spec: str, total: int = subjects.DEFAULT_PARTITIONS) -> list[int]:
    """Parse FRAUD_FEATURES_PARTITIONS."""
    if spec.strip() == "all":
        return list(range(total))
    owned: set[int] = set()
    try:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            owned.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ConfigError(f"FRAUD_FEATURES_PARTITIONS must be 'all' or like '0-3,6', got {spec!r}") from None
    if not owned or min(owned) < 0 or max(owned) >= total:
        raise ConfigError(f"FRAUD_FEATURES_PARTITIONS must name partitions 0..{total - 1}, got {spec!r}")
    return sorted(owned)


def _label(partitions: list[int]) -> str:
    return "-".join(map(str, partitions))


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    config = FeaturesConfig.from_env()
    partitions = owned_partitions(config.partitions)
    feature_log = JetStreamFeatureLog(
        OnceLog(ctx.js, ctx.store, source="/fraud/features"), ctx.store, partitions, js=ctx.js
    )
    snapshots = FileSnapshotStore(ctx.config.var_dir / "features" / f"snapshot-{_label(partitions)}.marshal")
    state = await rebuild(feature_log, snapshots, partitions)
    log.info(
        "features partitions %s at sequence %d (%d events replayed after the snapshot), %d cards",
        _label(partitions), state.last_seq, state.applied, len(state.engine.cards),
    )  # fmt: skip

    async def save_snapshot() -> None:
        async with state.lock:
            await state.settle()  # the snapshot's last_seq must cover everything folded into it
            if state.stale:
                return
            snapshot = state.snapshot(partitions)
        await asyncio.to_thread(snapshots.save, snapshot)

    async def snapshot_periodically() -> None:
        saved_at = state.last_seq
        while True:
            await asyncio.sleep(config.snapshot_every_s)
            if state.last_seq != saved_at:
                saved_at = state.last_seq
                await save_snapshot()

    snapshotter = asyncio.ensure_future(snapshot_periodically())
    owned = set(partitions)

    async def on_label(seq: int, envelope: Envelope) -> None:
        label = envelope.payload(events.LabelReported)
        key = subjects.card_key(label)
        if key and subjects.partition_of(key) in owned:  # labels older than card-v2 carry no card
            try:
                await apply_label(label, seq, state, feature_log)
            except Exception:  # the fold was voided (state goes stale and is rebuilt from the log)
                log.warning("label of %s at LABELS sequence %d was not recorded", label.transaction_id, seq)

    labels = await follow(
        ctx.js, ctx.store, "LABELS", subjects.LABELS_ALL, on_label, state.labels_seq + 1, reader="features"
    )

    async def handle(
        request: features.ComputeFeaturesRequest, deadline: float | None
    ) -> features.ComputeFeaturesResponse:
        return await compute_features(request, state, feature_log)

    server = RpcServer(
        subjects.features_rpc_partition(0), features.ComputeFeaturesRequest, handle, config.max_in_flight,
        service="features", forward=Forward(subjects.SCORING_RPC, score_request),
    )  # fmt: skip
    for partition in partitions:  # compute answers the caller; decide forwards the vector to scoring
        for subject, callback in (
            (subjects.features_rpc_partition(partition), server.on_message),
            (subjects.features_decide_partition(partition), server.on_message_forwarded),
        ):
            subscription = await ctx.nc.subscribe(subject, queue=f"features-{partition}", cb=callback)
            ctx.on_shutdown.append(subscription.unsubscribe)
    ctx.on_shutdown += [labels.stop, server.drain, snapshotter.cancel, save_snapshot]
    full_name = features.DESCRIPTOR.services_by_name["FeatureService"].full_name
    return [(features_grpc.add_FeatureServiceServicer_to_server, FeatureServicer(state, feature_log), full_name)]
