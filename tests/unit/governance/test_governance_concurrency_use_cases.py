"""Governance use cases when another writer races ours (in-memory fakes, registry on SQLite)."""

from __future__ import annotations

import asyncio

import pytest

from fraud.events.v1 import quarantine_events_pb2 as qpb
from services.governance.adapters.event_log import skipped
from services.governance.domain import decisions
from services.governance.domain.commands import ApproveModel, DeployModel, PromoteModel, Role
from services.governance.domain.errors import (
    ConcurrentChange,
    InvalidTransition,
)
from services.governance.domain.model import Model
from services.governance.service_layer import handlers, projection
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


async def test_an_event_the_log_skipped_counts_for_the_next_append_and_the_projection(
    gov: handlers.Governance,
) -> None:
    await handlers.register_model(gov, register_cmd())
    # What the JetStream log yields in place of an event it quarantined (on this model's subject, then the tail).
    for _ in range(2):
        seq = len(store(gov).stream) + 1
        store(gov).stream.append(
            (NAME, skipped("governance", "MODELS", seq, qpb.QUARANTINE_REASON_UNREADABLE_ENVELOPE))
        )
    assert (await handlers.load_model(gov, NAME)).last_seq == 4  # the expected sequence the server will check
    await approve_twice(gov, "1.0.0")  # no ConcurrentChange: the skipped events are not "another writer"
    assert store(gov).types()[-2:] == ["ModelApproved", "ModelApproved"]
    assert gov.registry.position() == 6
    await handlers.register_model(gov, register_cmd("1.1.0"))
    store(gov).stream.append((NAME, skipped("governance", "MODELS", 9, qpb.QUARANTINE_REASON_APPLY_FAILED)))
    assert await projection.catch_up(gov) == 9 and gov.registry.position() == 9  # a bad tail is passed once
