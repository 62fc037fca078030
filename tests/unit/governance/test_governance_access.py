"""AccessService on small fakes of its ports (issue 13): the caller is ``granted_by``; no self-grants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import pytest

from fraud.access.v1 import access_service_pb2 as pb
from fraudshared.identity.grants import GrantEntry
from fraudshared.identity.principal import Principal, acting_as
from services.governance.entrypoints.access_servicer import AccessServicer
from services.governance.service_layer.access import Access
from tests.unit.governance.test_governance_servicer_actors import Aborted, FakeContext

ROLES = ("scorer", "labeler", "analyst", "model-owner", "approver", "auditor", "privacy-officer", "admin")
ADMIN = Principal("user", "dev-admin")
T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


@dataclass
class FakeAccessLog:
    """RoleLog and grants fold in one: appends fold at once (the real fold follows the stream)."""

    held: dict[tuple[str, str], GrantEntry] = field(default_factory=dict)
    appended: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    async def grant(self, principal_id: str, role: str, granted_by: str, reason: str) -> bool:
        if (principal_id, role) in self.held:
            return False
        self.appended.append(("RoleGranted", principal_id, role, granted_by, reason))
        self.held[principal_id, role] = GrantEntry(principal_id, role, granted_by, reason, T0, len(self.appended))
        return True

    async def revoke(self, principal_id: str, role: str, granted_by: str, reason: str) -> bool:
        if self.held.pop((principal_id, role), None) is None:
            return False
        self.appended.append(("RoleRevoked", principal_id, role, granted_by, reason))
        return True

    def entries(self) -> list[GrantEntry]:
        return list(self.held.values())


@pytest.fixture
def log() -> FakeAccessLog:
    return FakeAccessLog()


async def call(log: FakeAccessLog, method: str, request: object, as_: Principal = ADMIN) -> object:
    with acting_as(as_):
        return await getattr(AccessServicer(Access(log, log, ROLES)), method)(request, FakeContext())


async def test_grant_records_the_caller_and_lists(log: FakeAccessLog) -> None:
    grant = pb.GrantRoleRequest(principal="user:carol", role="approver", reason="TICKET-1")
    assert (await call(log, "GrantRole", grant)).changed is True  # type: ignore[attr-defined]
    assert (await call(log, "GrantRole", grant)).changed is False  # type: ignore[attr-defined]
    assert log.appended == [("RoleGranted", "user:carol", "approver", "user:dev-admin", "TICKET-1")]
    await call(log, "GrantRole", pb.GrantRoleRequest(principal="service:monitor", role="auditor", reason="r"))
    listed = await call(log, "ListGrants", pb.ListGrantsRequest(), Principal("user", "dev-auditor"))
    assert [(g.principal, g.role, g.granted_by, g.reason, g.sequence) for g in listed.grants] == [  # type: ignore[attr-defined]
        ("service:monitor", "auditor", "user:dev-admin", "r", 2),
        ("user:carol", "approver", "user:dev-admin", "TICKET-1", 1),
    ]
    assert listed.grants[0].granted_at.ToDatetime(UTC) == T0  # type: ignore[attr-defined]
    one = await call(log, "ListGrants", pb.ListGrantsRequest(principal="user:carol"))
    assert [g.role for g in one.grants] == ["approver"]  # type: ignore[attr-defined]


async def test_revoke(log: FakeAccessLog) -> None:
    await call(log, "GrantRole", pb.GrantRoleRequest(principal="user:carol", role="scorer", reason="r"))
    revoke = pb.RevokeRoleRequest(principal="user:carol", role="scorer", reason="left the team")
    assert (await call(log, "RevokeRole", revoke)).changed is True  # type: ignore[attr-defined]
    assert (await call(log, "RevokeRole", revoke)).changed is False  # type: ignore[attr-defined]
    assert log.appended[-1] == ("RoleRevoked", "user:carol", "scorer", "user:dev-admin", "left the team")
    assert log.entries() == []


async def test_an_admin_may_not_grant_itself_a_role(log: FakeAccessLog) -> None:
    with pytest.raises(Aborted) as refused:
        await call(log, "GrantRole", pb.GrantRoleRequest(principal="user:dev-admin", role="approver", reason="me"))
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details == "four eyes: user:dev-admin may not grant a role to itself; another admin must"
    assert log.appended == []


@pytest.mark.parametrize(
    ("principal", "role", "message"),
    [("alice", "scorer", "principal: principal must be user:<name>"), ("user:alice", "root", "unknown role 'root'")],
)
async def test_malformed_changes_are_invalid(log: FakeAccessLog, principal: str, role: str, message: str) -> None:
    # The wire rules refuse these first; the domain refuses them too for callers that skip the interceptor.
    with pytest.raises(Aborted) as refused:
        await call(log, "GrantRole", pb.GrantRoleRequest(principal=principal, role=role, reason="r"))
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT and refused.value.details.startswith(message)
    assert log.appended == []


async def test_no_principal_is_unauthenticated(log: FakeAccessLog) -> None:
    request = pb.GrantRoleRequest(principal="user:carol", role="approver", reason="r")
    with pytest.raises(Aborted, match="UNAUTHENTICATED: no authenticated caller"):
        await AccessServicer(Access(log, log, ROLES)).GrantRole(request, FakeContext())
