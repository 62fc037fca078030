"""Governance over real gRPC, real nats-server (JetStream) and a real tritonserver."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from sqlalchemy import select

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.grpc_server import ServicerSpec
from fraudshared.nats_server import NatsServer, find_free_port
from fraudshared.service import RunningService, ServiceContext, start_in_process
from services.governance.adapters import registry_tables
from services.governance.adapters.event_log import JetStreamModelEvents
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import default_database_url, make_engine
from services.governance.adapters.triton_repository import TritonModelControl
from services.governance.bootstrap import bootstrap
from services.governance.service_layer import handlers

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
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


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    lightgbm = pytest.importorskip("lightgbm")
    from fraudml.onnx_export import to_onnx

    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 1.0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    return Artifacts(to_onnx(model, len(FEATURES)), model.booster_.model_to_string().encode())


@pytest.fixture
def env_for(nats_server: NatsServer, triton_server: object, tmp_path: Path) -> Iterator[Callable[..., dict[str, str]]]:
    saved = dict(os.environ)

    def make(instance: str, triton_grpc_url: str | None = None) -> dict[str, str]:
        return {
            "FRAUD_NATS_URL": nats_server.url,
            "FRAUD_VAR_DIR": str(tmp_path / instance),  # own registry database per instance
            "FRAUD_ARTIFACT_DIR": str(tmp_path / "artifacts"),  # instances share the artifact store
            "FRAUD_GOVERNANCE_GRPC_PORT": "0",
            "FRAUD_TRITON_GRPC_URL": triton_grpc_url or triton_server.grpc_url,  # type: ignore[attr-defined]
            "FRAUD_TRITON_MODEL_REPO": str(triton_server.repo_dir),  # type: ignore[attr-defined]
        }

    yield make
    os.environ.clear()
    os.environ.update(saved)


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


@pytest_asyncio.fixture(loop_scope="session")
async def instance(env_for: Callable[..., dict[str, str]]) -> AsyncIterator[Instance]:
    async with governance(env_for("a")) as running:
        yield running


@pytest.fixture
def triton(triton_server: object) -> Iterator[TritonModelControl]:
    control = TritonModelControl(triton_server.grpc_url)  # type: ignore[attr-defined]
    yield control
    control.close()


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


async def test_lifecycle_register_to_rollback_with_triton_and_registry_answers(
    instance: Instance, artifacts: Artifacts, triton: TritonModelControl, js: JetStreamContext
) -> None:
    stub, name = instance.stub, model_name()
    started = time.perf_counter()
    registered = (await stub.RegisterModel(register_request(name, artifacts))).model
    assert registered.stage == pb.MODEL_STAGE_VALIDATED
    assert registered.artifact_sha256 == hashlib.sha256(artifacts.onnx).hexdigest()
    assert registered.explainer_artifact_sha256 == hashlib.sha256(artifacts.explainer).hexdigest()
    assert registered.validation_checks["explainer"].startswith("lightgbm booster, 3 features")
    approved = await approve(stub, name, "1.0.0")
    assert approved.stage == pb.MODEL_STAGE_APPROVED and list(approved.approvers) == ["risk-officer", "model-validator"]
    deployed = await stub.DeployModel(deploy_request(name))
    register_to_serving_s = time.perf_counter() - started
    print(f"\nregister -> serving (register, 2 approvals, load + warm in Triton): {register_to_serving_s:.2f} s")
    assert register_to_serving_s < 10.0
    assert deployed.model.stage == pb.MODEL_STAGE_DEPLOYED and deployed.model.role == CHAMPION
    assert deployed.model.triton_model_name == f"{name}-1-0-0"
    scores = triton.infer(f"{name}-1-0-0", np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 1.0]], dtype=np.float32))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    t_v1 = datetime.now(UTC)

    await ready(stub, name, artifacts, "1.1.0", CANARY, 20)
    assert ready_models(triton, name, ["1.0.0", "1.1.0"]) == {"1.0.0": True, "1.1.0": True}
    t_canary = datetime.now(UTC)

    promoted = (
        await stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.1.0", promoted_by="own"))
    ).model
    assert (promoted.role, promoted.canary_percent) == (CHAMPION, 0)
    assert ready_models(triton, name, ["1.0.0", "1.1.0"]) == {"1.0.0": False, "1.1.0": True}
    t_v2 = datetime.now(UTC)

    restored = (await stub.RollbackModel(pb.RollbackModelRequest(model_name=name, rolled_back_by="oncall"))).model
    assert (restored.version, restored.role, restored.stage) == ("1.0.0", CHAMPION, pb.MODEL_STAGE_DEPLOYED)
    assert ready_models(triton, name, ["1.0.0", "1.1.0"]) == {"1.0.0": True, "1.1.0": False}
    t_back = datetime.now(UTC)

    lifecycle = ["ModelRegistered", "ModelValidated", "ModelApproved", "ModelApproved", "ModelDeployed"]
    assert await subject_event_types(js, name) == [
        *lifecycle,
        *lifecycle,
        "ModelPromoted",
        "ModelRetired",
        "ModelRolledBack",
        "ModelRetired",
    ]

    async def live(at: datetime) -> str:
        request = pb.GetLiveModelRequest(model_name=name)
        request.at.FromDatetime(at)
        return (await stub.GetLiveModel(request)).model.version

    assert [await live(t) for t in (registered.registered_at.ToDatetime(UTC), t_v1, t_canary, t_v2, t_back)] == [
        "",
        "1.0.0",
        "1.0.0",
        "1.1.0",
        "1.0.0",
    ]
    serving = (await stub.GetServingModels(pb.GetServingModelsRequest())).models
    assert [(m.version, m.role) for m in serving if m.model_name == name] == [("1.0.0", CHAMPION)]

    lineage = await stub.GetModel(pb.GetModelRequest(model_name=name, version="1.1.0"))
    assert lineage.model.stage == pb.MODEL_STAGE_RETIRED and lineage.model.data_split["train"]
    assert [a.approver for a in lineage.approvals] == ["risk-officer", "model-validator"]
    assert [(h.kind, h.role) for h in lineage.history] == [
        ("validated", 0),
        ("deployed", CANARY),
        ("promoted", CHAMPION),
        ("retired", 0),
    ]
    assert lineage.reference_profile.histograms[0].feature == "score"

    for sha, content in (
        (registered.artifact_sha256, artifacts.onnx),
        (registered.explainer_artifact_sha256, artifacts.explainer),
    ):
        assert (await stub.GetModelArtifact(pb.GetModelArtifactRequest(sha256=sha))).content == content
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetModelArtifact(pb.GetModelArtifactRequest(sha256="0" * 64))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    # Rebuilt from the stream alone, a fresh registry equals the live one.
    await stub.ListModels(pb.ListModelsRequest())  # catch up
    live_engine = make_engine(default_database_url(instance.var_dir))
    fresh = RegistryProjection(make_engine(f"sqlite:///{instance.var_dir / 'rebuilt.db'}"))
    fresh.create()
    history = [pair async for pair in JetStreamModelEvents(EventStore(js), js).read_all(0)]
    fresh.rebuild(history)
    assert table_rows(fresh.engine) == table_rows(live_engine)


def table_rows(engine: Any) -> dict[str, list[Any]]:
    tables = [*registry_tables.PROJECTED, registry_tables.projection_position]
    with engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in tables}


async def test_which_version_decided_a_transaction(
    instance: Instance, artifacts: Artifacts, js: JetStreamContext
) -> None:
    stub, name = instance.stub, model_name()
    registered = (await stub.RegisterModel(register_request(name, artifacts))).model
    transaction_id = f"tx-{uuid.uuid4().hex[:12]}"
    prediction = tx_events.PredictionMade(
        schema_version=1,
        transaction_id=transaction_id,
        card_token="tok-1",
        model=decision_pb2.ModelRef(name=name, version="1.0.0", artifact_sha256=registered.artifact_sha256),
        score=0.93,
        decision=decision_pb2.DECISION_DECLINE,
        role=CHAMPION,
        scoring_path=decision_pb2.SCORING_PATH_TRITON,
    )
    prediction.decided_at.FromDatetime(datetime.now(UTC))
    envelope = new_envelope(
        prediction,
        source="/fraud/scoring",
        subject=transaction_id,
        event_id=event_id("PredictionMade", transaction_id),
        time=datetime.now(UTC),
        schema_version=1,
    )
    await EventStore(js).append(envelope, subject=subjects.prediction_made("tok-1", transaction_id))
    found = await stub.GetDecisionModel(pb.GetDecisionModelRequest(transaction_id=transaction_id))
    assert (found.model.model_name, found.model.version, found.artifact_matches) == (name, "1.0.0", True)
    assert (found.score, found.decision, found.prediction_seq > 0) == (0.93, decision_pb2.DECISION_DECLINE, True)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetDecisionModel(pb.GetDecisionModelRequest(transaction_id="tx-never-seen"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_requests_get_clear_codes_and_append_nothing(
    instance: Instance, artifacts: Artifacts, js: JetStreamContext
) -> None:
    stub, name = instance.stub, model_name()
    for request in (
        register_request(name, Artifacts(b"definitely not onnx", artifacts.explainer)),
        register_request(name, artifacts, feature_names=["amount", "card_tx_count_1d"]),
        register_request(name, Artifacts(artifacts.onnx, b"not a lightgbm model")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RegisterModel(request)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
    assert await subject_event_types(js, name) == []

    await stub.RegisterModel(register_request(name, artifacts))
    approval = pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="risk-officer")
    cases = [
        (stub.RegisterModel(register_request(name, artifacts)), grpc.StatusCode.ALREADY_EXISTS),
        (stub.DeployModel(deploy_request(name)), grpc.StatusCode.FAILED_PRECONDITION),
        (stub.DeployModel(deploy_request(name, "9.9.9")), grpc.StatusCode.NOT_FOUND),
        (stub.ApproveModel(pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="trainer")), None),
        (stub.ApproveModel(approval), grpc.StatusCode.OK),
        (stub.ApproveModel(approval), grpc.StatusCode.FAILED_PRECONDITION),
        (stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.0.0", promoted_by="o")), None),
        (stub.RollbackModel(pb.RollbackModelRequest(model_name=name, rolled_back_by="o")), None),
    ]
    for call, code in cases:
        if code is grpc.StatusCode.OK:
            await call
            continue
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call
        assert failure.value.code() == (code or grpc.StatusCode.FAILED_PRECONDITION), failure.value.details()
    assert await subject_event_types(js, name) == ["ModelRegistered", "ModelValidated", "ModelApproved"]


async def test_two_owners_promoting_at_once_one_wins_the_other_is_aborted(
    env_for: Callable[..., dict[str, str]], artifacts: Artifacts, triton: TritonModelControl, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("race-a")) as a, governance(env_for("race-b")) as b:
        await ready(a.stub, name, artifacts, "1.0.0", CHAMPION)
        await ready(a.stub, name, artifacts, "1.1.0", CANARY, 10)
        await ready(b.stub, name, artifacts, "1.2.0", SHADOW)
        # Both instances decide on the same subject state, then both append: a real race, every time.
        both_decided = asyncio.Barrier(2)
        for instance in (a, b):
            _gate_promotions(instance.gov, both_decided)
        outcomes = await asyncio.gather(
            a.stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.1.0", promoted_by="owner-a")),
            b.stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.2.0", promoted_by="owner-b")),
            return_exceptions=True,
        )
        failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(failed) == 1 and failed[0].code() == grpc.StatusCode.ABORTED, outcomes
        assert "concurrent change" in (failed[0].details() or "")
        winner = next(o for o in outcomes if not isinstance(o, BaseException)).model.version
        loser = "1.2.0" if winner == "1.1.0" else "1.1.0"
        for instance in (a, b):  # both registries agree, whichever wrote
            listed = (await instance.stub.ListModels(pb.ListModelsRequest(model_name=name))).models
            roles = {m.version: (m.stage, m.role) for m in listed}
            assert roles["1.0.0"] == (pb.MODEL_STAGE_RETIRED, 0)
            assert roles[winner] == (pb.MODEL_STAGE_DEPLOYED, CHAMPION)
            assert roles[loser][0] == pb.MODEL_STAGE_DEPLOYED and roles[loser][1] in (CANARY, SHADOW)
    types = await subject_event_types(js, name)
    assert types.count("ModelPromoted") == 1 and types[-2:] == ["ModelPromoted", "ModelRetired"]
    assert ready_models(triton, name, ["1.0.0", winner, loser]) == {"1.0.0": False, winner: True, loser: True}


def _gate_promotions(gov: handlers.Governance, barrier: asyncio.Barrier) -> None:
    original = gov.events.append

    async def append(event: Any, *, expected_last_seq: int | None) -> int:
        if isinstance(event, events_pb.ModelPromoted):
            await asyncio.wait_for(barrier.wait(), timeout=10.0)
        return await original(event, expected_last_seq=expected_last_seq)

    gov.events.append = append  # type: ignore[method-assign]


async def test_racing_deploys_of_one_version_append_once_and_keep_it_loaded(
    env_for: Callable[..., dict[str, str]], artifacts: Artifacts, triton: TritonModelControl, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("deploy-a")) as a, governance(env_for("deploy-b")) as b:
        await a.stub.RegisterModel(register_request(name, artifacts))
        await approve(a.stub, name, "1.0.0")
        deploys = await asyncio.gather(
            a.stub.DeployModel(deploy_request(name)), b.stub.DeployModel(deploy_request(name)), return_exceptions=True
        )
        failed = [o for o in deploys if isinstance(o, grpc.aio.AioRpcError)]
        assert len(failed) == 1 and failed[0].code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)
        for client in (a.stub, b.stub):
            listed = (await client.ListModels(pb.ListModelsRequest(model_name=name))).models
            assert [m.stage for m in listed] == [pb.MODEL_STAGE_DEPLOYED]
    assert (await subject_event_types(js, name))[-1] == "ModelDeployed"
    assert (await subject_event_types(js, name)).count("ModelDeployed") == 1
    assert triton.is_ready(f"{name}-1-0-0")


async def test_deploy_with_triton_down_is_unavailable_and_changes_nothing(
    env_for: Callable[..., dict[str, str]], artifacts: Artifacts, triton_server: object, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("down", triton_grpc_url=f"127.0.0.1:{find_free_port()}")) as down:
        await down.stub.RegisterModel(register_request(name, artifacts))
        await approve(down.stub, name, "1.0.0")
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await down.stub.DeployModel(deploy_request(name))
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
        listed = (await down.stub.ListModels(pb.ListModelsRequest(model_name=name))).models
        assert [m.stage for m in listed] == [pb.MODEL_STAGE_APPROVED]
    assert not (triton_server.repo_dir / f"{name}-1-0-0").exists()  # type: ignore[attr-defined]
    assert (await subject_event_types(js, name))[-1] == "ModelApproved"
