"""Helpers shared by the governance service tests: an in-process service, its requests, what it appended."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudshared import subjects
from fraudshared.events.store import EventStore
from fraudshared.grpc_server import ServicerSpec
from fraudshared.service import RunningService, ServiceContext, start_in_process
from services.governance.adapters.triton_repository import TritonModelControl
from services.governance.bootstrap import bootstrap
from services.governance.service_layer import handlers

FEATURES = ["amount", "card_tx_count_1d", "terminal_risk_7d"]
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 * 1024 * 1024), ("grpc.max_receive_message_length", 64 << 20)]
CHAMPION, CANARY, SHADOW = (
    events_pb.DEPLOYMENT_ROLE_CHAMPION,
    events_pb.DEPLOYMENT_ROLE_CANARY,
    events_pb.DEPLOYMENT_ROLE_SHADOW,
)


@dataclass(frozen=True)
class Artifacts:
    onnx: bytes
    explainer: bytes


@dataclass
class Instance:
    stub: pb_grpc.GovernanceServiceStub
    gov: handlers.Governance
    var_dir: Path


@asynccontextmanager
async def governance(env: dict[str, str]) -> AsyncIterator[Instance]:
    os.environ.update(env)  # read by the service while it starts
    built: list[handlers.Governance] = []

    async def boot(ctx: ServiceContext) -> Sequence[ServicerSpec]:
        specs = await bootstrap(ctx)
        built.append(specs[0][1].gov)  # type: ignore[attr-defined]
        return specs

    service: RunningService = await start_in_process("governance", boot, timeout=60.0)
    try:
        async with grpc.aio.insecure_channel(service.address, options=CHANNEL_OPTIONS) as channel:
            yield Instance(pb_grpc.GovernanceServiceStub(channel), built[0], Path(env["FRAUD_VAR_DIR"]))
    finally:
        await service.stop()


def model_name() -> str:
    return f"test-fraud-{uuid.uuid4().hex[:8]}"


def register_request(name: str, art: Artifacts, version: str = "1.0.0", **changes: object) -> pb.RegisterModelRequest:
    profile = events_pb.ReferenceProfile(rows=300)
    profile.histograms.add(feature="score", bin_edges=[0.0, 0.5, 1.0], frequencies=[0.9, 0.1])
    fields: dict[str, object] = {
        "model_name": name,
        "version": version,
        "onnx_model": art.onnx,
        "explainer_model": art.explainer,
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "fs-1",
        "feature_names": FEATURES,
        "metrics": {"auc_roc": 0.9},
        "thresholds": decision_pb2.Thresholds(review=0.5, decline=0.9),
        "registered_by": "trainer",
        "reference_profile": profile,
        "data_split": {"train": "2026-01-01/2026-01-21", "test": "2026-01-29/2026-02-04"},
    }
    fields.update(changes)
    return pb.RegisterModelRequest(**fields)


async def approve(stub: pb_grpc.GovernanceServiceStub, name: str, version: str) -> pb.ModelVersion:
    for approver in ("risk-officer", "model-validator"):
        response = await stub.ApproveModel(pb.ApproveModelRequest(model_name=name, version=version, approver=approver))
    return response.model


def deploy_request(name: str, version: str = "1.0.0", role: int = CHAMPION, percent: int = 0) -> pb.DeployModelRequest:
    return pb.DeployModelRequest(
        model_name=name,
        version=version,
        role=role,
        canary_percent=percent,
        deployed_by="ops",  # type: ignore[arg-type]
    )


async def ready(
    stub: pb_grpc.GovernanceServiceStub, name: str, art: Artifacts, version: str, role: int, pct: int = 0
) -> None:
    await stub.RegisterModel(register_request(name, art, version))
    await approve(stub, name, version)
    await stub.DeployModel(deploy_request(name, version, role, pct))


async def subject_event_types(js: JetStreamContext, name: str) -> list[str]:
    store = EventStore(js)
    return [e.envelope.type.rsplit(".", 1)[-1] async for e in store.read_subject("MODELS", subjects.model_events(name))]


def ready_models(triton: TritonModelControl, name: str, versions: Sequence[str]) -> dict[str, bool]:
    return {v: triton.is_ready(f"{name}-{v.replace('.', '-')}") for v in versions}
