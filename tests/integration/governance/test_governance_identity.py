"""Four eyes and role grants over real gRPC with certificates (issue 13): the caller is the actor.

Every call goes over mTLS as a development principal of the session's test CA; the auth interceptor in front
of the servicers checks the caller's roles against the access table and the ACCESS stream's grants.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import grpc
import grpc.aio
import pytest
from nats.js import JetStreamContext
from typer.testing import CliRunner

from fraud.access.v1 import access_service_pb2 as access_pb
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudctl.access_cli import app as access_app
from fraudshared import subjects
from fraudshared.events.store import EventStore
from tests.fixtures.identity import credential
from tests.integration.governance.governance_support import (
    APPROVER,
    APPROVER_2,
    OWNER,
    Artifacts,
    Instance,
    model_name,
    register_request,
    subject_event_types,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value


async def test_two_distinct_approvers_by_certificate_and_the_events_name_them(
    instance: Instance, artifacts: Artifacts, js: JetStreamContext
) -> None:
    name = model_name()
    registered = (await instance.stub.RegisterModel(register_request(name, artifacts))).model
    assert registered.registered_by == "user:dev-model-owner"
    approval = pb.ApproveModelRequest(model_name=name, version="1.0.0", comment="backtest ok")

    denied = await refused(instance.as_(OWNER).ApproveModel(approval))  # the owner holds no approver role
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED, denied.details()
    assert "user:dev-model-owner may not call ApproveModel" in (denied.details() or "")

    forged = pb.ApproveModelRequest(model_name=name, version="1.0.0", approver="user:dev-approver-2")
    invalid = await refused(instance.as_(APPROVER).ApproveModel(forged))  # an old client naming someone else
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (invalid.details() or "").startswith("approver is deprecated and ignored")

    first = (await instance.as_(APPROVER).ApproveModel(approval)).model
    assert first.stage == pb.MODEL_STAGE_VALIDATED
    again = await refused(instance.as_(APPROVER).ApproveModel(approval))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        again.details() == f"user:dev-approver has already approved {name}@1.0.0; one principal's approval counts once"
    )
    second = (await instance.as_(APPROVER_2).ApproveModel(approval)).model
    assert second.stage == pb.MODEL_STAGE_APPROVED
    assert list(second.approvers) == ["user:dev-approver", "user:dev-approver-2"]

    store = EventStore(js)
    approvers = [
        stored.envelope.payload(events_pb.ModelApproved).approver
        async for stored in store.read_subject("MODELS", subjects.model_events(name))
        if stored.envelope.type.endswith("ModelApproved")
    ]
    assert approvers == ["user:dev-approver", "user:dev-approver-2"]


async def test_a_principal_with_both_roles_cannot_approve_what_it_registered(
    instance: Instance, artifacts: Artifacts, js: JetStreamContext
) -> None:
    name, both = model_name(), instance.as_("dev-owner-approver")
    await both.RegisterModel(register_request(name, artifacts))
    four_eyes = await refused(both.ApproveModel(pb.ApproveModelRequest(model_name=name, version="1.0.0")))
    assert four_eyes.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert four_eyes.details() == f"four eyes: user:dev-owner-approver registered {name}@1.0.0 and cannot approve it"
    assert await subject_event_types(js, name) == ["ModelRegistered", "ModelValidated"]


async def test_a_caller_without_a_certificate_gets_no_answer(instance: Instance) -> None:
    async with grpc.aio.insecure_channel(instance.address) as plain:
        failure = await refused(pb_grpc.GovernanceServiceStub(plain).ListModels(pb.ListModelsRequest()))
    assert failure.code() == grpc.StatusCode.UNAVAILABLE  # plaintext to a TLS port: no handshake, no call


async def test_an_admin_grants_a_role_and_the_grantee_can_call(instance: Instance) -> None:
    newcomer = f"dev-analyst-{uuid.uuid4().hex[:6]}"
    principal = f"user:{newcomer}"
    listing = instance.as_(newcomer).ListModels(pb.ListModelsRequest())
    assert (await refused(listing)).code() == grpc.StatusCode.PERMISSION_DENIED

    admin = instance.access_as("dev-admin")
    grant = access_pb.GrantRoleRequest(principal=principal, role="analyst", reason="TICKET-13")
    assert (await admin.GrantRole(grant)).changed is True
    assert (await admin.GrantRole(grant)).changed is False
    await _until_holds(instance, principal, "analyst")
    await instance.as_(newcomer).ListModels(pb.ListModelsRequest())

    listed = await instance.access_as("dev-auditor").ListGrants(access_pb.ListGrantsRequest(principal=principal))
    assert [(g.principal, g.role, g.granted_by, g.reason) for g in listed.grants] == [
        (principal, "analyst", "user:dev-admin", "TICKET-13")
    ]
    denied = await refused(instance.access_as(newcomer).GrantRole(grant))  # analysts grant nothing
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    revoke = access_pb.RevokeRoleRequest(principal=principal, role="analyst", reason="left")
    assert (await admin.RevokeRole(revoke)).changed is True
    await _until_holds(instance, principal, "analyst", held=False)
    assert (await refused(instance.as_(newcomer).ListModels(pb.ListModelsRequest()))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_an_admin_may_not_grant_itself_a_role(instance: Instance) -> None:
    own = access_pb.GrantRoleRequest(principal="user:dev-admin", role="approver", reason="me")
    failure = await refused(instance.access_as("dev-admin").GrantRole(own))
    assert failure.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert failure.details() == "four eyes: user:dev-admin may not grant a role to itself; another admin must"
    assert not instance.ctx.grants.holds("user:dev-admin", "approver")


async def test_fraudctl_access_grants_lists_and_revokes_as_the_caller(instance: Instance) -> None:
    principal = f"user:dev-labeler-{uuid.uuid4().hex[:6]}"
    admin_dir = str(credential("dev-admin").files.cert.parent)  # type: ignore[union-attr]
    env = {"FRAUD_CREDENTIAL": admin_dir, "FRAUD_GOVERNANCE_ADDR": instance.address}

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(access_app, list(args), env={**os.environ, **env})
        return result.exit_code, result.output

    # Blocking gRPC in a thread: the service under test runs on this event loop.
    code, output = await asyncio.to_thread(run, "grant", principal, "labeler", "--reason", "TICKET-2")
    assert (code, output.strip()) == (0, f"{principal} labeler: granted")
    await _until_holds(instance, principal, "labeler")
    code, output = await asyncio.to_thread(run, "list", principal, "--json")
    assert code == 0 and '"granted_by": "user:dev-admin"' in output and '"reason": "TICKET-2"' in output
    code, output = await asyncio.to_thread(run, "grant", "dev-admin", "labeler", "--reason", "me")
    assert code == 1 and "FAILED_PRECONDITION: four eyes: user:dev-admin may not grant a role to itself" in output
    code, output = await asyncio.to_thread(run, "revoke", principal, "labeler", "--reason", "done")
    assert (code, output.strip()) == (0, f"{principal} labeler: revoked")


async def _until_holds(instance: Instance, principal: str, role: str, *, held: bool = True) -> None:
    async with asyncio.timeout(10.0):
        while instance.ctx.grants.holds(principal, role) is not held:  # noqa: ASYNC110 - poll the fold (no event)
            await asyncio.sleep(0.02)
