"""Governance use cases, registering and approving a model version (in-memory fakes, registry on SQLite)."""

from __future__ import annotations

import hashlib

import pytest

from services.governance.domain.commands import ApproveModel, DeployModel, Role
from services.governance.domain.errors import (
    InvalidArtifact,
    InvalidTransition,
    UnknownArtifact,
)
from services.governance.domain.model import Stage
from services.governance.service_layer import handlers, projection, queries
from tests.unit.governance.governance_fakes import (
    NAME,
    register_cmd,
    server,
    snapshot,
    store,
)


async def test_register_validates_and_stores_both_artifacts(gov: handlers.Governance) -> None:
    view = await handlers.register_model(gov, register_cmd())
    assert store(gov).types() == ["ModelRegistered", "ModelValidated"]
    assert view.stage is Stage.VALIDATED and view.metrics == {"auc_roc": 0.91}
    assert view.validation_checks == {
        "onnx_checker": "passed",
        "explainer": "fake",
        "thresholds": "0 <= review 0.5 <= decline 0.9 <= 1",
        "feature_names": "3 distinct names",
    }
    assert view.explainer_artifact_sha256 == hashlib.sha256(b"explainer-1.0.0").hexdigest()
    assert await queries.get_artifact(gov, view.explainer_artifact_sha256) == b"explainer-1.0.0"
    assert await queries.get_artifact(gov, view.artifact_sha256) == b"onnx-bytes-1.0.0"
    with pytest.raises(UnknownArtifact):
        await queries.get_artifact(gov, "0" * 64)


async def test_corrupt_onnx_appends_and_stores_nothing(gov: handlers.Governance) -> None:
    with pytest.raises(InvalidArtifact):
        await handlers.register_model(gov, register_cmd(onnx_model=b"corrupt"))
    assert store(gov).stream == [] and gov.artifacts.blobs == {}  # type: ignore[attr-defined]


async def test_registering_again_completes_a_half_done_registration(gov: handlers.Governance) -> None:
    store(gov).before_append = None
    await handlers.register_model(gov, register_cmd())
    store(gov).stream.pop()  # as if the process died between ModelRegistered and ModelValidated
    await projection.rebuild(gov)
    view = await handlers.register_model(gov, register_cmd())
    assert view.stage is Stage.VALIDATED and store(gov).types() == ["ModelRegistered", "ModelValidated"]


@pytest.mark.parametrize(
    ("approver", "message"),
    [("trainer", "four eyes"), ("risk-officer", "already approved"), ("carol", "only a validated version")],
)
async def test_refused_approvals_change_nothing(gov: handlers.Governance, approver: str, message: str) -> None:
    await handlers.register_model(gov, register_cmd())
    await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", "risk-officer"))
    if message.startswith("only"):
        await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", "model-validator"))  # now approved: a third
    before, rows = list(store(gov).stream), snapshot(gov.registry)
    with pytest.raises(InvalidTransition, match=message):
        await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", approver))
    assert store(gov).stream == before and snapshot(gov.registry) == rows


async def test_second_approval_makes_it_approved_and_deployable(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd())
    view = await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", "risk-officer"))
    assert view.stage is Stage.VALIDATED
    with pytest.raises(InvalidTransition, match="needs 2 approvals"):
        await handlers.deploy_model(gov, DeployModel(NAME, "1.0.0", Role.CHAMPION, "ops"))
    view = await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", "model-validator"))
    assert view.stage is Stage.APPROVED and view.approvers == ("risk-officer", "model-validator")
    view, load_ms = await handlers.deploy_model(gov, DeployModel(NAME, "1.0.0", Role.CHAMPION, "ops"))
    assert view.stage is Stage.DEPLOYED and view.role is Role.CHAMPION and load_ms >= 0
    assert server(gov).loaded == {f"{NAME}-1-0-0": 3}
