"""Composition root of the monitor: follow PREDICTIONS and LABELS into counters, serve the status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.monitor.v1 import monitor_service_pb2 as monitor
from fraud.monitor.v1 import monitor_service_pb2_grpc as monitor_grpc
from fraudshared import subjects
from fraudshared.config import EnvConfig, env_field
from fraudshared.events.envelope import Envelope
from fraudshared.events.follow import follow
from fraudshared.grpc_server import ServicerSpec
from fraudshared.service import ServiceContext
from services.monitor.domain.counters import PredictionCounters
from services.monitor.entrypoints.grpc_servicer import MonitorServicer


@dataclass(frozen=True)
class MonitorConfig(EnvConfig):
    """Monitor settings (see docs/config.md)."""

    # Off the hot path: read PREDICTIONS in batches, at most this many seconds behind (0 = per event).
    follow_linger_s: float = env_field("FRAUD_MONITOR_FOLLOW_LINGER_S", 0.5)


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    config = MonitorConfig.from_env()
    counters = PredictionCounters()

    def on_prediction(seq: int, envelope: Envelope) -> None:
        counters.on_prediction(seq, envelope.payload(events.PredictionMade))

    def on_label(seq: int, envelope: Envelope) -> None:
        counters.on_label(envelope.payload(events.LabelReported))

    predictions = await follow(
        ctx.js, ctx.store, "PREDICTIONS", subjects.PREDICTIONS_MADE_ALL, on_prediction,
        linger_s=config.follow_linger_s, reader="monitor",
    )  # fmt: skip
    labels = await follow(ctx.js, ctx.store, "LABELS", subjects.LABELS_ALL, on_label, reader="monitor")
    ctx.on_shutdown += [predictions.stop, labels.stop]
    full_name = monitor.DESCRIPTOR.services_by_name["MonitorService"].full_name
    return [(monitor_grpc.add_MonitorServiceServicer_to_server, MonitorServicer(counters), full_name)]
