"""Governance use cases, deploying, promoting, rolling back and serving (in-memory fakes, registry on SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as tx_events
from services.governance.domain.commands import DeployModel, PromoteModel, Role, RollbackModel
from services.governance.domain.errors import (
    DeploymentFailed,
    UnknownDecision,
)
from services.governance.domain.model import Stage
from services.governance.service_layer import handlers, projection, queries
from tests.unit.governance.governance_fakes import (
    NAME,
    Clock,
    approve_twice,
    ready,
    register_cmd,
    server,
    snapshot,
    store,
)


async def test_canary_promote_rollback_sequence(gov: handlers.Governance) -> None:
    await ready(gov, "1.0.0")
    await ready(gov, "1.1.0", Role.CANARY, 10)
    assert set(server(gov).loaded) == {f"{NAME}-1-0-0", f"{NAME}-1-1-0"}
    mark = len(store(gov).stream)

    promoted = await handlers.promote_model(gov, PromoteModel(NAME, "1.1.0", "owner", "better AP"))
    assert (promoted.stage, promoted.role, promoted.canary_percent) == (Stage.DEPLOYED, Role.CHAMPION, 0)
    assert store(gov).types()[mark:] == ["ModelPromoted", "ModelRetired"]
    assert set(server(gov).loaded) == {f"{NAME}-1-1-0"}  # the old champion unloaded after the events
    old = (await queries.list_models(gov, NAME))[0]
    assert old.stage is Stage.RETIRED and old.retired_at is not None

    server(gov).calls.clear()
    restored = await handlers.rollback_model(gov, RollbackModel(NAME, "oncall", "AP dropped"))
    assert (restored.version, restored.stage, restored.role) == ("1.0.0", Stage.DEPLOYED, Role.CHAMPION)
    assert store(gov).types()[mark + 2 :] == ["ModelRolledBack", "ModelRetired"]
    assert server(gov).calls == [f"deploy {NAME}-1-0-0", f"undeploy {NAME}-1-1-0"]  # reload first, unload last
    assert [(v.version, v.stage) for v in await queries.get_serving_models(gov)] == [("1.0.0", Stage.DEPLOYED)]

    lineage = await queries.get_model(gov, NAME, "1.1.0")
    assert [(h.kind, h.role, h.other_version) for h in lineage.history] == [
        ("validated", None, ""),
        ("deployed", Role.CANARY, ""),
        ("promoted", Role.CHAMPION, "1.0.0"),
        ("retired", None, ""),
    ]
    assert lineage.history[-1].reason == "rolled back to 1.0.0"
    assert [a.approver for a in lineage.approvals] == ["risk-officer", "model-validator"]


async def test_live_at_follows_deploy_promote_and_rollback_times(gov: handlers.Governance) -> None:
    clock: Clock = gov.clock  # type: ignore[assignment]
    await handlers.register_model(gov, register_cmd("1.0.0"))
    before_any = clock.now
    await approve_twice(gov, "1.0.0")
    await handlers.deploy_model(gov, DeployModel(NAME, "1.0.0", Role.CHAMPION, "ops"))
    v1_live = clock.now
    await ready(gov, "1.1.0", Role.CANARY, 50)
    canary_live = clock.now
    await handlers.promote_model(gov, PromoteModel(NAME, "1.1.0", "owner"))
    v2_live = clock.now
    await handlers.rollback_model(gov, RollbackModel(NAME, "oncall"))
    back_live = clock.now

    async def live(at: datetime) -> str | None:
        found = await queries.live_model(gov, NAME, at)
        return found.version if found else None

    assert await live(before_any) is None
    assert [await live(t) for t in (v1_live, canary_live, v2_live, back_live)] == ["1.0.0", "1.0.0", "1.1.0", "1.0.0"]
    assert await live(v2_live - timedelta(seconds=30)) == "1.0.0"


async def test_failed_deploy_leaves_registry_unchanged_and_nothing_loaded(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd())
    await approve_twice(gov, "1.0.0")
    server(gov).fail_with = DeploymentFailed("load failed")
    with pytest.raises(DeploymentFailed):
        await handlers.deploy_model(gov, DeployModel(NAME, "1.0.0", Role.CHAMPION, "ops"))
    assert len(store(gov).stream) == 4 and server(gov).loaded == {}
    assert (await queries.list_models(gov))[0].stage is Stage.APPROVED


async def test_failed_reload_on_rollback_appends_nothing(gov: handlers.Governance) -> None:
    await ready(gov, "1.0.0")
    await ready(gov, "1.1.0", Role.SHADOW)
    await handlers.promote_model(gov, PromoteModel(NAME, "1.1.0", "owner"))
    before = list(store(gov).stream)
    server(gov).fail_with = DeploymentFailed("Triton refused it")
    with pytest.raises(DeploymentFailed):
        await handlers.rollback_model(gov, RollbackModel(NAME, "oncall"))
    assert store(gov).stream == before and set(server(gov).loaded) == {f"{NAME}-1-1-0"}


async def test_rebuild_gives_the_same_rows(gov: handlers.Governance) -> None:
    await ready(gov, "1.0.0")
    await ready(gov, "1.1.0", Role.CANARY, 10)
    await handlers.promote_model(gov, PromoteModel(NAME, "1.1.0", "owner"))
    await handlers.rollback_model(gov, RollbackModel(NAME, "oncall"))
    before = snapshot(gov.registry)
    assert await projection.rebuild(gov) == len(store(gov).stream)
    assert snapshot(gov.registry) == before


async def test_which_version_decided_a_transaction(gov: handlers.Governance) -> None:
    await ready(gov, "1.0.0")
    view = (await queries.list_models(gov, NAME))[0]
    decided = tx_events.PredictionMade(
        transaction_id="tx-1",
        model=common.ModelRef(name=NAME, version="1.0.0", artifact_sha256=view.artifact_sha256),
        score=0.7,
        decision=common.DECISION_REVIEW,
    )
    gov.decisions.predictions["tx-1"] = (decided, 42)  # type: ignore[union-attr]
    found = await queries.decided_by(gov, "tx-1")
    assert found.model == view and found.stream_seq == 42 and found.prediction.score == 0.7
    with pytest.raises(UnknownDecision):
        await queries.decided_by(gov, "tx-unknown")


async def test_reconcile_reloads_serving_versions_the_model_server_lost(gov: handlers.Governance) -> None:
    await ready(gov, "1.0.0")
    model_server = server(gov)
    assert await handlers.reconcile_serving(gov) == []  # all there: nothing to do
    model_server.loaded.clear()  # Triton restarted (explicit model control starts empty)
    reloaded = await handlers.reconcile_serving(gov)
    assert reloaded == list(model_server.loaded) and len(reloaded) == 1
    assert await handlers.reconcile_serving(gov) == []
