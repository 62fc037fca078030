"""The Grants fold: grants, revocations, service principals."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fraud.access.v1 import access_events_pb2 as pb
from fraudshared.identity import SERVICE_ROLE, Grants, Principal


def _granted(principal: str, role: str) -> pb.RoleGranted:
    return pb.RoleGranted(schema_version=1, principal=principal, role=role, granted_by="user:root", reason="t")


def _revoked(principal: str, role: str) -> pb.RoleRevoked:
    return pb.RoleRevoked(schema_version=1, principal=principal, role=role, granted_by="user:root", reason="t")


def test_grants_and_revocations_fold_into_roles() -> None:
    grants = Grants()
    alice = Principal("user", "alice")
    assert grants.roles_of(alice) == frozenset()
    assert grants.apply(_granted("user:alice", "analyst"), 3)
    assert not grants.apply(_granted("user:alice", "analyst"), 4)
    assert grants.apply(_granted("user:alice", "approver"), 5)
    assert grants.roles_of(alice) == {"analyst", "approver"}
    assert grants.roles_of(Principal("user", "alice", "oidc")) == {"analyst", "approver"}
    assert grants.apply(_revoked("user:alice", "analyst"), 6)
    assert not grants.apply(_revoked("user:alice", "analyst"), 7)
    assert grants.roles_of(alice) == {"approver"}
    (entry,) = grants.entries()
    assert (entry.principal, entry.role, entry.granted_by, entry.sequence) == ("user:alice", "approver", "user:root", 5)
    assert grants.last_seq == 7


def test_a_platform_service_always_holds_the_service_role() -> None:
    grants = Grants()
    ingest = Principal("service", "ingest")
    assert grants.roles_of(ingest) == {SERVICE_ROLE}
    grants.apply(_granted("service:ingest", "auditor"))
    assert grants.roles_of(ingest) == {SERVICE_ROLE, "auditor"}
    assert not grants.holds("service:ingest", SERVICE_ROLE)


def test_other_messages_are_refused() -> None:
    with pytest.raises(TypeError):
        Grants().apply(Timestamp())


def test_only_the_platform_services_hold_the_service_role() -> None:
    grants = Grants()
    assert SERVICE_ROLE in grants.roles_of(Principal("service", "scoring"))
    # Other certificates the CA issues (the runtime's bootstrap, NATS) get nothing implicitly.
    assert grants.roles_of(Principal("service", "bootstrap")) == frozenset()
    assert grants.roles_of(Principal("service", "nats")) == frozenset()
