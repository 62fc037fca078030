"""Governance use cases when another writer races ours (in-memory fakes, registry on SQLite)."""

from __future__ import annotations

import asyncio

import pytest

from services.governance.domain import decisions
from services.governance.domain.commands import ApproveModel, DeployModel, PromoteModel, Role
from services.governance.domain.errors import (
    ConcurrentChange,
    InvalidTransition,
)
from services.governance.domain.model import Model
from services.governance.service_layer import handlers
from tests.unit.governance.governance_fakes import (
    NAME,
    T0,
    approve_twice,
    ready,
    register_cmd,
    server,
    store,
)


async def test_a_racing_writer_makes_the_append_fail_and_the_load_is_undone(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd("1.0.0"))
    await approve_twice(gov, "1.0.0")
    # Another governance instance registers a version between our read and our append.
    other = decisions.decide_register(Model(NAME), register_cmd("2.0.0"), "ab" * 32, "", T0)
    store(gov).before_append = lambda: store(gov).stream.append((NAME, other))
    with pytest.raises(ConcurrentChange, match=f"concurrent change to model {NAME}, retry"):
        await handlers.deploy_model(gov, DeployModel(NAME, "1.0.0", Role.CHAMPION, "ops"))
    assert server(gov).loaded == {}


async def test_a_racing_promotion_loses_with_concurrent_change(gov: handlers.Governance) -> None:
    await ready(gov, "1.0.0")
    await ready(gov, "1.1.0", Role.CANARY, 10)
    await ready(gov, "1.2.0", Role.SHADOW)
    winner = await handlers.load_model(gov, NAME)
    racing = decisions.decide_promote(winner, PromoteModel(NAME, "1.2.0", "owner-b"), T0).events[0]
    store(gov).before_append = lambda: store(gov).stream.append((NAME, racing))
    before = len(store(gov).stream)
    with pytest.raises(ConcurrentChange):
        await handlers.promote_model(gov, PromoteModel(NAME, "1.1.0", "owner-a"))
    assert store(gov).types()[before:] == ["ModelPromoted"]  # only the winner's
    assert set(server(gov).loaded) == {f"{NAME}-1-0-0", f"{NAME}-1-1-0", f"{NAME}-1-2-0"}  # loser unloaded nothing


async def test_concurrent_approvals_in_one_process_are_serialized(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd())
    results = await asyncio.gather(
        *(handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", who)) for who in ("alice", "alice")),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InvalidTransition) for r in results) == 1
    assert store(gov).types().count("ModelApproved") == 1
