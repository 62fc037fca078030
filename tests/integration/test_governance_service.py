"""Governance over real gRPC, real nats-server (JetStream) and a real tritonserver."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudshared import subjects
from fraudshared.events.store import EventStore
from fraudshared.nats_server import NatsServer, find_free_port
from fraudshared.service import RunningService, start_in_process
from services.governance.adapters.triton_repository import TritonModelControl
from services.governance.bootstrap import bootstrap

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
FEATURES = ["amount", "card_tx_count_1d", "terminal_risk_7d"]
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 * 1024 * 1024)]


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    lightgbm = pytest.importorskip("lightgbm")
    from fraudml.onnx_export import to_onnx

    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 1.0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    return to_onnx(model, len(FEATURES))


@pytest.fixture
def env_for(nats_server: NatsServer, triton_server: object, tmp_path: Path) -> Iterator[Callable[..., dict[str, str]]]:
    saved = dict(os.environ)

    def make(instance: str, triton_grpc_url: str | None = None) -> dict[str, str]:
        env = {
            "FRAUD_NATS_URL": nats_server.url,
            "FRAUD_VAR_DIR": str(tmp_path / instance),  # own registry database per instance
            "FRAUD_ARTIFACT_DIR": str(tmp_path / "artifacts"),  # instances share the artifact store
            "FRAUD_GOVERNANCE_GRPC_PORT": "0",
            "FRAUD_TRITON_GRPC_URL": triton_grpc_url or triton_server.grpc_url,  # type: ignore[attr-defined]
            "FRAUD_TRITON_MODEL_REPO": str(triton_server.repo_dir),  # type: ignore[attr-defined]
        }
        os.environ.update(env)
        return env

    yield make
    os.environ.clear()
    os.environ.update(saved)


@asynccontextmanager
async def governance(env: dict[str, str]) -> AsyncIterator[pb_grpc.GovernanceServiceStub]:
    os.environ.update(env)  # read by the service while it starts
    service: RunningService = await start_in_process("governance", bootstrap, timeout=60.0)
    try:
        async with grpc.aio.insecure_channel(service.address, options=CHANNEL_OPTIONS) as channel:
            yield pb_grpc.GovernanceServiceStub(channel)
    finally:
        await service.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def stub(env_for: Callable[..., dict[str, str]]) -> AsyncIterator[pb_grpc.GovernanceServiceStub]:
    async with governance(env_for("a")) as client:
        yield client


def model_name() -> str:
    return f"test-fraud-{uuid.uuid4().hex[:8]}"


def register_request(
    name: str, onnx_model: bytes, version: str = "1.0.0", **changes: object
) -> pb.RegisterModelRequest:
    fields: dict[str, object] = {
        "model_name": name,
        "version": version,
        "onnx_model": onnx_model,
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "fs-1",
        "feature_names": FEATURES,
        "metrics": {"auc_roc": 0.9},
        "thresholds": decision_pb2.Thresholds(review=0.5, decline=0.9),
        "registered_by": "trainer",
    }
    fields.update(changes)
    return pb.RegisterModelRequest(**fields)


def deploy_request(name: str, version: str = "1.0.0") -> pb.DeployModelRequest:
    return pb.DeployModelRequest(
        model_name=name, version=version, role=events_pb.DEPLOYMENT_ROLE_CHAMPION, deployed_by="ops"
    )


async def subject_event_types(js: JetStreamContext, name: str) -> list[str]:
    store = EventStore(js)
    return [e.envelope.type.rsplit(".", 1)[-1] async for e in store.read_subject("MODELS", subjects.model_events(name))]


async def test_register_approve_deploy_serves_in_triton(
    stub: pb_grpc.GovernanceServiceStub, onnx_model: bytes, triton_server: object, js: JetStreamContext
) -> None:
    name = model_name()
    registered = (await stub.RegisterModel(register_request(name, onnx_model))).model
    assert registered.stage == pb.MODEL_STAGE_REGISTERED
    assert registered.artifact_sha256 == hashlib.sha256(onnx_model).hexdigest()
    approved = (await stub.ApproveModel(pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="al"))).model
    assert approved.stage == pb.MODEL_STAGE_APPROVED and list(approved.approvers) == ["al"]
    deployed = await stub.DeployModel(deploy_request(name))
    assert deployed.model.stage == pb.MODEL_STAGE_DEPLOYED and deployed.load_ms > 0
    assert deployed.model.role == events_pb.DEPLOYMENT_ROLE_CHAMPION
    assert deployed.model.triton_model_name == f"{name}-1-0-0"

    control = TritonModelControl(triton_server.grpc_url)  # type: ignore[attr-defined]
    try:
        assert control.is_ready(f"{name}-1-0-0")
        scores = control.infer(f"{name}-1-0-0", np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 1.0]], dtype=np.float32))
        assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    finally:
        control.close()
    serving = (await stub.GetServingModels(pb.GetServingModelsRequest())).models
    assert [(m.version, m.stage) for m in serving if m.model_name == name] == [("1.0.0", pb.MODEL_STAGE_DEPLOYED)]
    listed = (await stub.ListModels(pb.ListModelsRequest(model_name=name))).models
    assert [m.version for m in listed] == ["1.0.0"] and list(listed[0].feature_names) == FEATURES
    assert await subject_event_types(js, name) == ["ModelRegistered", "ModelApproved", "ModelDeployed"]


async def test_bad_requests_get_clear_codes_and_append_nothing(
    stub: pb_grpc.GovernanceServiceStub, onnx_model: bytes, js: JetStreamContext
) -> None:
    name = model_name()
    for request in (
        register_request(name, b"definitely not onnx"),
        register_request(name, onnx_model, feature_names=["amount", "card_tx_count_1d"]),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RegisterModel(request)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
        assert "onnx_model" in (failure.value.details() or "")
    assert await subject_event_types(js, name) == []

    await stub.RegisterModel(register_request(name, onnx_model))
    cases = [
        (stub.RegisterModel(register_request(name, onnx_model)), grpc.StatusCode.ALREADY_EXISTS),
        (stub.DeployModel(deploy_request(name)), grpc.StatusCode.FAILED_PRECONDITION),
        (stub.DeployModel(deploy_request(name, "9.9.9")), grpc.StatusCode.NOT_FOUND),
    ]
    for call, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call
        assert failure.value.code() == code, failure.value.details()
    assert await subject_event_types(js, name) == ["ModelRegistered"]


async def test_racing_instances_never_append_twice(
    env_for: Callable[..., dict[str, str]], onnx_model: bytes, triton_server: object, js: JetStreamContext
) -> None:
    name = model_name()
    env_a, env_b = env_for("race-a"), env_for("race-b")
    async with governance(env_a) as a, governance(env_b) as b:
        await a.RegisterModel(register_request(name, onnx_model))
        approvals = await asyncio.gather(
            a.ApproveModel(pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="alice")),
            b.ApproveModel(pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="bob")),
            return_exceptions=True,
        )
        deploys = await asyncio.gather(
            a.DeployModel(deploy_request(name)), b.DeployModel(deploy_request(name)), return_exceptions=True
        )
        for outcomes in (approvals, deploys):
            failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            assert len(failed) == 1, outcomes
            assert failed[0].code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)
        # Both instances agree, whichever wrote: the projection follows the stream.
        for client in (a, b):
            listed = (await client.ListModels(pb.ListModelsRequest(model_name=name))).models
            assert [m.stage for m in listed] == [pb.MODEL_STAGE_DEPLOYED]
    assert await subject_event_types(js, name) == ["ModelRegistered", "ModelApproved", "ModelDeployed"]
    control = TritonModelControl(triton_server.grpc_url)  # type: ignore[attr-defined]
    try:
        assert control.is_ready(f"{name}-1-0-0")
    finally:
        control.close()


async def test_deploy_with_triton_down_is_unavailable_and_changes_nothing(
    env_for: Callable[..., dict[str, str]], onnx_model: bytes, triton_server: object, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("down", triton_grpc_url=f"127.0.0.1:{find_free_port()}")) as client:
        await client.RegisterModel(register_request(name, onnx_model))
        await client.ApproveModel(pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="alice"))
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await client.DeployModel(deploy_request(name))
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
        listed = (await client.ListModels(pb.ListModelsRequest(model_name=name))).models
        assert [m.stage for m in listed] == [pb.MODEL_STAGE_APPROVED]
    assert not (triton_server.repo_dir / f"{name}-1-0-0").exists()  # type: ignore[attr-defined]
    assert await subject_event_types(js, name) == ["ModelRegistered", "ModelApproved"]
