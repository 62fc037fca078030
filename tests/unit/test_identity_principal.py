"""Principal ids, SPIFFE ids and the current-principal context."""

from __future__ import annotations

import pytest

from fraudshared.identity import AuthError, NoPrincipal, Principal, acting_as, current_principal


def test_principal_round_trips_through_id_and_spiffe_id() -> None:
    alice = Principal("user", "alice")
    assert alice.id == "user:alice"
    assert alice.spiffe_id("fraud.local") == "spiffe://fraud.local/user/alice"
    assert Principal.from_spiffe_id("spiffe://fraud.local/user/alice", "fraud.local") == alice
    assert Principal.parse("service:ingest") == Principal("service", "ingest", "internal")


@pytest.mark.parametrize(
    "principal_id", ["alice", "robot:x", "user:", "user:Alice", "user:a/b", "user:-x", "service:" + "a" * 129]
)
def test_parse_rejects_malformed_ids(principal_id: str) -> None:
    with pytest.raises(AuthError):
        Principal.parse(principal_id)


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://other.domain/user/alice",
        "spiffe://fraud.local/robot/alice",
        "spiffe://fraud.local/user",
        "spiffe://fraud.local/user/alice/extra",
        "https://fraud.local/user/alice",
    ],
)
def test_from_spiffe_id_rejects_foreign_or_malformed_uris(uri: str) -> None:
    with pytest.raises(AuthError):
        Principal.from_spiffe_id(uri, "fraud.local")


def test_current_principal_is_set_only_inside_acting_as() -> None:
    with pytest.raises(NoPrincipal):
        current_principal()
    with acting_as(Principal("user", "bob", "internal")) as bob:
        assert current_principal() is bob
    with pytest.raises(NoPrincipal):
        current_principal()
