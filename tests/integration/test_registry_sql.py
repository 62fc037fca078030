"""Contract tests of the registry projection, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from services.governance.adapters import registry_tables
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine
from services.governance.domain import model as domain
from services.governance.domain.commands import ApproveModel, DeployModel, RegisterModel, Role
from services.governance.domain.model import Model, Stage

pytestmark = pytest.mark.integration
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _pg_reachable() -> str | None:
    try:
        with create_engine(PG_URL).connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def projection(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryProjection]:
    if request.param == "sqlite":
        registry = RegistryProjection(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
        registry.create()
        yield registry
        registry.engine.dispose()
        return
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    schema = f"gov_test_{uuid.uuid4().hex[:12]}"  # other runs share the database
    registry = RegistryProjection(make_engine(PG_URL, schema=schema))
    try:
        registry.create()
        yield registry
    finally:
        registry.engine.dispose()
        with create_engine(PG_URL).begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def lifecycle() -> list[tuple[Message, int]]:
    """Two versions: 1.0.0 champion, then 1.1.0 champion (1.0.0 retired); seqs with gaps like a shared stream."""
    model = Model("card-fraud-gbdt")
    history: list[tuple[Message, int]] = []
    seq = 0

    def add(event: Message) -> None:
        nonlocal seq
        seq += 3
        model.apply(event, seq)
        history.append((event, seq))

    for version in ("1.0.0", "1.1.0"):
        add(
            domain.decide_register(
                model,
                RegisterModel(
                    "card-fraud-gbdt",
                    version,
                    b"x",
                    "cd" * 32,
                    "fs-1",
                    ("amount", "count"),
                    0.4,
                    0.8,
                    "trainer",
                    params={"depth": "6"},
                    metrics={"auc_roc": 0.9},
                ),
                "ab" * 32,
                NOW,
            )
        )
        add(domain.decide_approve(model, ApproveModel("card-fraud-gbdt", version, "alice", "looks good"), NOW))
        add(domain.decide_deploy(model, DeployModel("card-fraud-gbdt", version, Role.CHAMPION, "ops"), NOW))
    return history


def snapshot(projection: RegistryProjection) -> dict[str, list[Any]]:
    tables = (
        registry_tables.model_versions,
        registry_tables.approvals,
        registry_tables.deployments,
        registry_tables.projection_position,
    )
    with projection.engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in tables}


def test_apply_builds_the_registry(projection: RegistryProjection) -> None:
    history = lifecycle()
    assert all(projection.apply(event, seq) for event, seq in history)
    assert projection.position() == history[-1][1]
    versions = projection.list_versions("card-fraud-gbdt")
    assert [(v.version, v.stage, v.role) for v in versions] == [
        ("1.0.0", Stage.RETIRED, None),
        ("1.1.0", Stage.DEPLOYED, Role.CHAMPION),
    ]
    current = projection.get("card-fraud-gbdt", "1.1.0")
    assert current is not None
    assert current.approvers == ("alice",) and current.triton_model_name == "card-fraud-gbdt-1-1-0"
    assert current.feature_names == ("amount", "count") and current.params == {"depth": "6"}
    assert current.registered_at == NOW and current.deployed_at == NOW
    assert [v.version for v in projection.serving()] == ["1.1.0"]
    assert projection.list_versions("another-model") == []
    assert len(snapshot(projection)["deployments"]) == 2


def test_reapplying_at_or_below_the_position_is_a_no_op(projection: RegistryProjection) -> None:
    history = lifecycle()
    for event, seq in history[:2]:
        projection.apply(event, seq)
    before = snapshot(projection)
    assert projection.apply(*history[1]) is False
    assert projection.apply(history[0][0], history[1][1] - 1) is False
    assert snapshot(projection) == before
    # The position is durable: a new projection over the same tables continues after it.
    again = RegistryProjection(projection.engine)
    again.create()
    assert again.position() == history[1][1]
    assert [again.apply(e, s) for e, s in history] == [False, False, True, True, True, True]


def test_racing_followers_apply_each_event_once(projection: RegistryProjection) -> None:
    history = lifecycle()

    def follow() -> int:
        return sum(projection.apply(event, seq) for event, seq in history)

    with ThreadPoolExecutor(max_workers=3) as pool:
        applied = list(pool.map(lambda _: follow(), range(3)))
    assert sum(applied) == len(history)
    assert len(snapshot(projection)["approvals"]) == 2


def test_rebuild_gives_the_same_rows(projection: RegistryProjection) -> None:
    history = lifecycle()
    for event, seq in history:
        projection.apply(event, seq)
    before = snapshot(projection)
    assert projection.rebuild(history) == len(history)
    assert snapshot(projection) == before
