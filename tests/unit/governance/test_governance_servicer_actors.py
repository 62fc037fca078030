"""The governance servicer takes the actor from the authenticated caller (issue 13), on the in-memory fakes.

The auth interceptor is not in front of these calls: `acting_as` sets the principal it would set, and a small
fake of the gRPC servicer context records what the servicer aborts with.
"""

from __future__ import annotations

import grpc
import pytest

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraudshared.identity.principal import Principal, acting_as
from services.governance.entrypoints.grpc_servicer import GovernanceServicer
from services.governance.service_layer import handlers
from tests.unit.governance.governance_fakes import FEATURES, NAME, store

OWNER, APPROVER, APPROVER_2 = (Principal("user", n) for n in ("dev-model-owner", "dev-approver", "dev-approver-2"))


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class FakeContext:
    """The part of grpc.aio.ServicerContext the servicer uses: abort raises."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


def register_request(**changes: object) -> pb.RegisterModelRequest:
    fields: dict[str, object] = {
        "model_name": NAME,
        "version": "1.0.0",
        "onnx_model": b"onnx-bytes-1.0.0",
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "fs-1",
        "feature_names": FEATURES,
        "thresholds": decision_pb2.Thresholds(review=0.5, decline=0.9),
    }
    fields.update(changes)
    return pb.RegisterModelRequest(**fields)


async def call_as(gov: handlers.Governance, principal: Principal | None, method: str, request: object) -> object:
    """Calls the servicer's ``method`` as ``principal`` (None: as nobody)."""
    handler = getattr(GovernanceServicer(gov), method)
    if principal is None:
        return await handler(request, FakeContext())
    with acting_as(principal):
        return await handler(request, FakeContext())


def approval(approver: str = "") -> pb.ApproveModelRequest:
    return pb.ApproveModelRequest(model_name=NAME, version="1.0.0", approver=approver)


async def test_the_caller_is_the_registrant_and_the_approvers(gov: handlers.Governance) -> None:
    registered = await call_as(gov, OWNER, "RegisterModel", register_request())
    assert registered.model.registered_by == "user:dev-model-owner"  # type: ignore[attr-defined]
    await call_as(gov, APPROVER, "ApproveModel", approval())
    approved = await call_as(gov, APPROVER_2, "ApproveModel", approval("dev-approver-2"))  # its own bare name: accepted
    assert approved.model.stage == pb.MODEL_STAGE_APPROVED  # type: ignore[attr-defined]
    assert list(approved.model.approvers) == ["user:dev-approver", "user:dev-approver-2"]  # type: ignore[attr-defined]
    deploy = pb.DeployModelRequest(model_name=NAME, version="1.0.0", role=events_pb.DEPLOYMENT_ROLE_CHAMPION)
    await call_as(gov, OWNER, "DeployModel", deploy)
    recorded = [e for _, e in store(gov).stream]
    assert [getattr(e, "approver", None) for e in recorded if isinstance(e, events_pb.ModelApproved)] == [
        "user:dev-approver",
        "user:dev-approver-2",
    ]
    assert next(e for e in recorded if isinstance(e, events_pb.ModelDeployed)).deployed_by == "user:dev-model-owner"


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("RegisterModel", register_request(registered_by="alice"), "registered_by"),
        ("ApproveModel", approval("user:dev-approver-2"), "approver"),
        ("DeployModel", pb.DeployModelRequest(model_name=NAME, role=1, deployed_by="x"), "deployed_by"),
        ("PromoteModel", pb.PromoteModelRequest(model_name=NAME, version="1.0.0", promoted_by="y"), "promoted_by"),
        ("RollbackModel", pb.RollbackModelRequest(model_name=NAME, rolled_back_by="user:z"), "rolled_back_by"),
    ],
)
async def test_an_actor_field_naming_someone_else_is_invalid(
    gov: handlers.Governance, method: str, request_: object, field: str
) -> None:
    with pytest.raises(Aborted) as refused:
        await call_as(gov, APPROVER, method, request_)
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details.startswith(f"{field} is deprecated and ignored") and "user:dev-approver" in (
        refused.value.details
    )
    assert store(gov).stream == []


async def test_the_same_approver_twice_counts_once(gov: handlers.Governance) -> None:
    await call_as(gov, OWNER, "RegisterModel", register_request())
    await call_as(gov, APPROVER, "ApproveModel", approval("user:dev-approver"))  # its own id: accepted
    with pytest.raises(Aborted) as refused:
        await call_as(gov, APPROVER, "ApproveModel", approval())
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details == (
        f"user:dev-approver has already approved {NAME}@1.0.0; one principal's approval counts once"
    )
    with pytest.raises(Aborted, match="FAILED_PRECONDITION: four eyes: user:dev-model-owner registered"):
        await call_as(gov, OWNER, "ApproveModel", approval())
    assert [type(e).__name__ for _, e in store(gov).stream] == ["ModelRegistered", "ModelValidated", "ModelApproved"]


async def test_no_principal_is_unauthenticated(gov: handlers.Governance) -> None:
    with pytest.raises(Aborted) as refused:
        await call_as(gov, None, "RegisterModel", register_request())
    assert (refused.value.code, refused.value.details) == (grpc.StatusCode.UNAUTHENTICATED, "no authenticated caller")
    assert store(gov).stream == []
