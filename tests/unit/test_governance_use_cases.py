"""Governance use cases with small in-memory fakes of the ports (no NATS, no Triton); registry on SQLite."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import select

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as tx_events
from services.governance.adapters import registry_tables
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine
from services.governance.domain import decisions
from services.governance.domain.commands import (
    ApproveModel,
    DeployModel,
    PromoteModel,
    RegisterModel,
    Role,
    RollbackModel,
)
from services.governance.domain.errors import (
    ConcurrentChange,
    DeploymentFailed,
    InvalidArtifact,
    InvalidTransition,
    UnknownArtifact,
    UnknownDecision,
)
from services.governance.domain.model import Model, Stage
from services.governance.service_layer import handlers, projection, queries
from services.governance.service_layer.ports import History

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NAME = "card-fraud-gbdt"
FEATURES = ("amount", "card_tx_count_1d", "terminal_risk_7d")


def register_cmd(version: str = "1.0.0", **changes: object) -> RegisterModel:
    fields: dict[str, object] = {
        "model_name": NAME,
        "version": version,
        "onnx_model": b"onnx-bytes-" + version.encode(),
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "fs-1",
        "feature_names": FEATURES,
        "review_threshold": 0.5,
        "decline_threshold": 0.9,
        "registered_by": "trainer",
        "metrics": {"auc_roc": 0.91},
        "explainer_model": b"explainer-" + version.encode(),
    }
    fields.update(changes)
    return RegisterModel(**fields)  # type: ignore[arg-type]


class FakeEventStore:
    """In-memory ModelEventLog: one list of (subject, event), sequences = positions + 1."""

    def __init__(self) -> None:
        self.stream: list[tuple[str, Message]] = []
        self.before_append: Callable[[], None] | None = None

    async def load(self, model_name: str) -> History:
        return [(e, i + 1) for i, (s, e) in enumerate(self.stream) if s == model_name]

    def last_on(self, model_name: str) -> int:
        return max((i + 1 for i, (s, _) in enumerate(self.stream) if s == model_name), default=0)

    async def append(self, event: Message, *, expected_last_seq: int | None) -> int:
        if self.before_append is not None:
            hook, self.before_append = self.before_append, None
            hook()
        name = event.model_name  # type: ignore[attr-defined]
        if expected_last_seq is not None and self.last_on(name) != expected_last_seq:
            raise ConcurrentChange(f"expected {expected_last_seq}, found {self.last_on(name)}")
        self.stream.append((name, event))
        return len(self.stream)

    async def read_all(self, after_seq: int) -> AsyncIterator[tuple[Message, int]]:
        for i, (_, event) in enumerate(self.stream[after_seq:], start=after_seq + 1):
            yield event, i

    async def last_seq(self) -> int:
        return len(self.stream)

    def types(self) -> list[str]:
        return [type(e).__name__ for _, e in self.stream]


class FakeArtifacts:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return sha

    def get(self, sha256: str) -> bytes:
        if sha256 not in self.blobs:
            raise UnknownArtifact(f"no artifact {sha256}")
        return self.blobs[sha256]


class FakeModelServer:
    def __init__(self) -> None:
        self.loaded: dict[str, int] = {}
        self.fail_with: Exception | None = None
        self.calls: list[str] = []

    async def deploy(self, serving_name: str, onnx_model: bytes, n_features: int) -> None:
        self.calls.append(f"deploy {serving_name}")
        self.loaded[serving_name] = n_features  # a failure below leaves it half-loaded: the use case must undo
        if self.fail_with is not None:
            raise self.fail_with

    async def undeploy(self, serving_name: str) -> None:
        self.calls.append(f"undeploy {serving_name}")
        self.loaded.pop(serving_name, None)

    async def is_serving(self, serving_name: str) -> bool:
        return serving_name in self.loaded


class FakeDecisionLog:
    def __init__(self) -> None:
        self.predictions: dict[str, tuple[tx_events.PredictionMade, int]] = {}

    async def prediction(self, transaction_id: str) -> tuple[tx_events.PredictionMade, int] | None:
        return self.predictions.get(transaction_id)


def fake_validate(onnx_model: bytes, explainer_model: bytes, feature_names: Sequence[str]) -> dict[str, str]:
    if onnx_model.startswith(b"corrupt"):
        raise InvalidArtifact("onnx_model is not a readable ONNX file")
    return {"onnx_checker": "passed", "explainer": "fake" if explainer_model else "none uploaded"}


class Clock:
    """A minute passes at every reading, so every event has its own time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def gov(tmp_path: Path) -> handlers.Governance:
    registry = RegistryProjection(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    registry.create()
    return handlers.Governance(
        FakeEventStore(),
        registry,
        FakeArtifacts(),
        FakeModelServer(),
        fake_validate,
        decisions=FakeDecisionLog(),
        clock=Clock(),
    )


def store(gov: handlers.Governance) -> FakeEventStore:
    return gov.events  # type: ignore[return-value]


def server(gov: handlers.Governance) -> FakeModelServer:
    return gov.model_server  # type: ignore[return-value]


async def approve_twice(gov: handlers.Governance, version: str) -> None:
    for approver in ("risk-officer", "model-validator"):
        await handlers.approve_model(gov, ApproveModel(NAME, version, approver))


async def ready(gov: handlers.Governance, version: str, role: Role = Role.CHAMPION, percent: int = 0) -> None:
    await handlers.register_model(gov, register_cmd(version))
    await approve_twice(gov, version)
    await handlers.deploy_model(gov, DeployModel(NAME, version, role, "ops", percent))


def snapshot(registry: Any) -> dict[str, list[Any]]:
    tables = [*registry_tables.PROJECTED, registry_tables.projection_position]
    with registry.engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in tables}


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
