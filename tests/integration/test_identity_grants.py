"""Role grants on a real JetStream: appends, no-op changes, racing writers, and a follower that keeps up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from nats.js import JetStreamContext

from fraudshared import subjects
from fraudshared.events.store import EventStore
from fraudshared.events.streams import default_specs, ensure_streams
from fraudshared.identity import Grants, Principal, follow_grants, grant_role, revoke_role

pytestmark = pytest.mark.integration


async def _access_stream(js: JetStreamContext) -> None:
    await ensure_streams(js, [spec for spec in default_specs() if spec.name == "ACCESS"])


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the follower has no event to wait on; poll its fold
            await asyncio.sleep(0.02)


async def test_grant_and_revoke_append_once_and_the_follower_applies_them(js: JetStreamContext) -> None:
    await _access_stream(js)
    name = f"user:t-{uuid.uuid4().hex[:10]}"
    principal = Principal.parse(name)
    assert await grant_role(js, name, "analyst", "user:dev-admin", "ticket 1")
    grants = Grants()
    task = await follow_grants(js, grants, reader="test-access")
    try:
        await _until(lambda: grants.restored)
        assert grants.roles_of(principal) == {"analyst"}
        assert not await grant_role(js, name, "analyst", "user:dev-admin", "again")
        assert await grant_role(js, name, "approver", "user:dev-admin", "ticket 2")
        await _until(lambda: "approver" in grants.roles_of(principal))
        assert await revoke_role(js, name, "analyst", "user:dev-admin", "ticket 3")
        assert not await revoke_role(js, name, "auditor", "user:dev-admin", "never held")
        await _until(lambda: grants.roles_of(principal) == {"approver"})
        (entry,) = [e for e in grants.entries() if e.principal == name]
        assert (entry.role, entry.granted_by, entry.reason) == ("approver", "user:dev-admin", "ticket 2")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stored = [s async for s in EventStore(js).read_subject("ACCESS", subjects.access_events(name))]
    assert [s.envelope.type.rsplit(".", 1)[1] for s in stored] == ["RoleGranted", "RoleGranted", "RoleRevoked"]


async def test_racing_grants_of_one_role_append_it_once(js: JetStreamContext) -> None:
    await _access_stream(js)
    name = f"user:t-{uuid.uuid4().hex[:10]}"
    results = await asyncio.gather(*(grant_role(js, name, "auditor", f"user:admin-{i}", "race") for i in range(4)))
    assert sorted(results) == [False, False, False, True]
    stored = [s async for s in EventStore(js).read_subject("ACCESS", subjects.access_events(name))]
    assert len(stored) == 1


async def test_bad_principal_or_role_is_refused_before_anything_is_appended(js: JetStreamContext) -> None:
    await _access_stream(js)
    with pytest.raises(ValueError, match="unknown role"):
        await grant_role(js, "user:someone", "superuser", "user:dev-admin", "no")
    with pytest.raises(ValueError):
        await grant_role(js, "robot:x", "admin", "user:dev-admin", "no")
