"""Governance over real gRPC, real nats-server (JetStream) and a real tritonserver: one instance, its lifecycle."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest
from nats.js import JetStreamContext
from sqlalchemy import select

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraud.governance.v1 import governance_service_pb2 as pb
from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from services.governance.adapters import registry_tables
from services.governance.adapters.event_log import JetStreamModelEvents
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import default_database_url, make_engine
from services.governance.adapters.triton_repository import TritonModelControl
from tests.integration.governance.governance_support import (
    APPROVER,
    CANARY,
    CHAMPION,
    Artifacts,
    Instance,
    approve,
    deploy_request,
    model_name,
    ready,
    ready_models,
    register_request,
    subject_event_types,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


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
    approved = await approve(instance, name, "1.0.0")
    assert approved.stage == pb.MODEL_STAGE_APPROVED and list(approved.approvers) == [
        "user:dev-approver",
        "user:dev-approver-2",
    ]
    deployed = await stub.DeployModel(deploy_request(name))
    register_to_serving_s = time.perf_counter() - started
    print(f"\nregister -> serving (register, 2 approvals, load + warm in Triton): {register_to_serving_s:.2f} s")
    assert register_to_serving_s < 10.0
    assert deployed.model.stage == pb.MODEL_STAGE_DEPLOYED and deployed.model.role == CHAMPION
    assert deployed.model.triton_model_name == f"{name}-1-0-0"
    scores = triton.infer(f"{name}-1-0-0", np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 1.0]], dtype=np.float32))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    t_v1 = datetime.now(UTC)

    await ready(instance, name, artifacts, "1.1.0", CANARY, 20)
    assert ready_models(triton, name, ["1.0.0", "1.1.0"]) == {"1.0.0": True, "1.1.0": True}
    t_canary = datetime.now(UTC)

    promoted = (await stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.1.0"))).model
    assert (promoted.role, promoted.canary_percent) == (CHAMPION, 0)
    assert ready_models(triton, name, ["1.0.0", "1.1.0"]) == {"1.0.0": False, "1.1.0": True}
    t_v2 = datetime.now(UTC)

    restored = (await stub.RollbackModel(pb.RollbackModelRequest(model_name=name))).model
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
    assert [a.approver for a in lineage.approvals] == ["user:dev-approver", "user:dev-approver-2"]
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
    approval = pb.ApproveModelRequest(model_name=name, version="1.0.0")
    approver = instance.as_(APPROVER)
    cases: list[tuple[Callable[[], Any], grpc.StatusCode | None]] = [
        (lambda: stub.RegisterModel(register_request(name, artifacts)), grpc.StatusCode.ALREADY_EXISTS),
        (lambda: stub.DeployModel(deploy_request(name)), grpc.StatusCode.FAILED_PRECONDITION),
        (lambda: stub.DeployModel(deploy_request(name, "9.9.9")), grpc.StatusCode.NOT_FOUND),
        (lambda: stub.ApproveModel(approval), grpc.StatusCode.PERMISSION_DENIED),  # the owner is no approver
        (lambda: approver.ApproveModel(approval), grpc.StatusCode.OK),
        (lambda: approver.ApproveModel(approval), grpc.StatusCode.FAILED_PRECONDITION),  # counts once
        (lambda: stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.0.0")), None),
        (lambda: stub.RollbackModel(pb.RollbackModelRequest(model_name=name)), None),
    ]
    for call, code in cases:  # one after the other: a grpc.aio call starts when it is created
        if code is grpc.StatusCode.OK:
            await call()
            continue
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call()
        assert failure.value.code() == (code or grpc.StatusCode.FAILED_PRECONDITION), failure.value.details()
    assert await subject_event_types(js, name) == ["ModelRegistered", "ModelValidated", "ModelApproved"]
