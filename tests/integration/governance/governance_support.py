"""Helpers shared by the governance service tests: an in-process service, its requests, what it appended.

The service runs with TLS and the auth interceptor, as in production: every call goes over mTLS as a development
principal of the session's test CA (`tests.fixtures.identity.aio_channel`). The roles those principals need are
granted on the ACCESS stream when an instance starts (`TEST_GRANTS`), and the instance waits until its grants
fold holds them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
from nats.js import JetStreamContext

from fraud.access.v1 import access_service_pb2_grpc as access_grpc
from fraud.common.v1 import decision_pb2
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudshared import subjects
from fraudshared.events.store import EventStore
from fraudshared.grpc_server import ServicerSpec
from fraudshared.identity.grants import grant_role
from fraudshared.service import RunningService, ServiceContext, start_in_process
from services.governance.adapters.triton_repository import TritonModelControl
from services.governance.bootstrap import bootstrap
from services.governance.service_layer import handlers
from tests.fixtures.identity import aio_channel

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


OWNER, APPROVER, APPROVER_2 = "dev-model-owner", "dev-approver", "dev-approver-2"
# Development principals (user:<name>) and the roles granted to them when an instance starts.
TEST_GRANTS = {
    OWNER: ("model-owner",),
    APPROVER: ("approver",),
    APPROVER_2: ("approver",),
    "dev-admin": ("admin",),
    "dev-auditor": ("auditor",),
    "dev-owner-approver": ("model-owner", "approver"),  # holds both roles: four eyes must still stop it
}
GRANTED_BY = "service:governance-tests"


@dataclass
class Instance:
    """A running governance service; ``stub`` calls as the model owner, `as_` as any development principal."""

    address: str
    gov: handlers.Governance
    ctx: ServiceContext
    var_dir: Path
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def channel(self, name: str) -> grpc.aio.Channel:
        """An mTLS channel to the instance as ``user:<name>`` (``service:<x>`` for a service), opened once."""
        if name not in self.channels:
            self.channels[name] = aio_channel(self.address, name, options=CHANNEL_OPTIONS)
        return self.channels[name]

    def as_(self, name: str) -> pb_grpc.GovernanceServiceStub:
        """GovernanceService as ``name``."""
        return pb_grpc.GovernanceServiceStub(self.channel(name))

    def access_as(self, name: str) -> access_grpc.AccessServiceStub:
        """AccessService as ``name``."""
        return access_grpc.AccessServiceStub(self.channel(name))

    @property
    def stub(self) -> pb_grpc.GovernanceServiceStub:
        """GovernanceService as the model owner (registers, deploys, promotes, rolls back, reads)."""
        return self.as_(OWNER)


async def grant_test_roles(ctx: ServiceContext) -> None:
    """Grants `TEST_GRANTS` on ACCESS (once per NATS server) and waits until the instance's fold holds them."""
    wanted = [(f"user:{name}", role) for name, roles in TEST_GRANTS.items() for role in roles]
    for principal, role in wanted:
        await grant_role(ctx.js, principal, role, GRANTED_BY, "governance integration tests")
    async with asyncio.timeout(15.0):
        while not all(ctx.grants.holds(p, r) for p, r in wanted):  # noqa: ASYNC110 - poll the fold (no event)
            await asyncio.sleep(0.02)


@asynccontextmanager
async def governance(env: dict[str, str]) -> AsyncIterator[Instance]:
    os.environ.update(env)  # read by the service while it starts
    built: list[tuple[handlers.Governance, ServiceContext]] = []

    async def boot(ctx: ServiceContext) -> Sequence[ServicerSpec]:
        specs = await bootstrap(ctx)
        built.append((specs[0][1].gov, ctx))  # type: ignore[attr-defined]
        return specs

    service: RunningService = await start_in_process("governance", boot, timeout=60.0)
    gov, ctx = built[0]
    instance = Instance(service.address, gov, ctx, Path(env["FRAUD_VAR_DIR"]))
    try:
        await grant_test_roles(ctx)
        yield instance
    finally:
        for channel in instance.channels.values():
            await channel.close()
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
        "reference_profile": profile,
        "data_split": {"train": "2026-01-01/2026-01-21", "test": "2026-01-29/2026-02-04"},
    }
    fields.update(changes)
    return pb.RegisterModelRequest(**fields)


async def approve(instance: Instance, name: str, version: str) -> pb.ModelVersion:
    """Two approvals, by the two development approvers."""
    for approver in (APPROVER, APPROVER_2):
        request = pb.ApproveModelRequest(model_name=name, version=version)
        response = await instance.as_(approver).ApproveModel(request)
    return response.model


def deploy_request(name: str, version: str = "1.0.0", role: int = CHAMPION, percent: int = 0) -> pb.DeployModelRequest:
    return pb.DeployModelRequest(
        model_name=name,
        version=version,
        role=role,
        canary_percent=percent,
    )


async def ready(instance: Instance, name: str, art: Artifacts, version: str, role: int, pct: int = 0) -> None:
    """Registered (as the owner), approved (by both approvers), deployed in ``role`` (as the owner)."""
    await instance.stub.RegisterModel(register_request(name, art, version))
    await approve(instance, name, version)
    await instance.stub.DeployModel(deploy_request(name, version, role, pct))


async def subject_event_types(js: JetStreamContext, name: str) -> list[str]:
    store = EventStore(js)
    return [e.envelope.type.rsplit(".", 1)[-1] async for e in store.read_subject("MODELS", subjects.model_events(name))]


def ready_models(triton: TritonModelControl, name: str, versions: Sequence[str]) -> dict[str, bool]:
    return {v: triton.is_ready(f"{name}-{v.replace('.', '-')}") for v in versions}
