"""Contract tests of the registry projection and its Alembic migrations, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.protobuf.message import Message
from sqlalchemy import Engine, MetaData, Table, create_engine, insert, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import DropTable

from services.governance.adapters import registry_migrations, registry_tables
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine, schema_of
from services.governance.domain import decisions
from services.governance.domain import events as ev
from services.governance.domain.commands import (
    ApproveModel,
    DeployModel,
    PromoteModel,
    RegisterModel,
    Role,
    RollbackModel,
)
from services.governance.domain.model import Model, Stage

pytestmark = pytest.mark.integration
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NAME = "card-fraud-gbdt"


def _pg_reachable() -> str | None:
    try:
        with create_engine(PG_URL).connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database (SQLite file, or a throw-away PostgreSQL schema dropped afterwards)."""
    if request.param == "sqlite":
        sqlite = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
        yield sqlite
        sqlite.dispose()
        return
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    schema = f"gov_test_{uuid.uuid4().hex[:12]}"  # other runs share the database
    pg = make_engine(PG_URL, schema=schema)
    try:
        yield pg
    finally:
        pg.dispose()
        with create_engine(PG_URL).begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def projection(engine: Engine) -> RegistryProjection:
    registry = RegistryProjection(engine)
    registry.create()
    return registry


def lifecycle() -> list[tuple[Message, int]]:
    """1.0.0 champion, 1.1.0 canary, 1.1.0 promoted, rolled back to 1.0.0; a minute per event, gappy seqs."""
    model = Model(NAME)
    history: list[tuple[Message, int]] = []
    clock = iter(T0 + timedelta(minutes=i) for i in range(1, 1000))

    def add(*events: Message) -> None:
        for event in events:
            seq = 3 * (len(history) + 1)  # other models share the stream
            model.apply(event, seq)
            history.append((event, seq))

    profile = ev.ReferenceProfile(rows=100)
    profile.histograms.add(feature="amount", bin_edges=[0.0, 10.0, 100.0], frequencies=[0.75, 0.25])
    for version, role, percent in (("1.0.0", Role.CHAMPION, 0), ("1.1.0", Role.CANARY, 25)):
        command = RegisterModel(
            NAME,
            version,
            b"x",
            "cd" * 32,
            "fs-1",
            ("amount", "count"),
            0.4,
            0.8,
            "trainer",
            code_revision="abc123",
            params={"depth": "6"},
            metrics={"auc_roc": 0.9},
            reference_profile=profile,
            data_split={"train": "2026-01-01/2026-01-21"},
        )
        add(decisions.decide_register(model, command, "ab" * 32, "ef" * 32, next(clock)))
        add(decisions.decide_validate(model, version, {"onnx_checker": "passed"}, next(clock)))
        for approver in ("alice", "bob"):
            add(decisions.decide_approve(model, ApproveModel(NAME, version, approver, "looks good"), next(clock)))
        add(*decisions.decide_deploy(model, DeployModel(NAME, version, role, "ops", percent), next(clock)).events)
    add(*decisions.decide_promote(model, PromoteModel(NAME, "1.1.0", "owner", "better AP"), next(clock)).events)
    add(*decisions.decide_rollback(model, RollbackModel(NAME, "oncall", "AP dropped"), next(clock)).events)
    return history


def at_event(history: list[tuple[Message, int]], kind: type[Message]) -> datetime:
    event = next(e for e, _ in history if isinstance(e, kind))
    field = next(f.name for f in event.DESCRIPTOR.fields if f.name.endswith("_at"))
    return getattr(event, field).ToDatetime(UTC)  # type: ignore[no-any-return]


def snapshot(projection: RegistryProjection) -> dict[str, list[Any]]:
    tables = [*registry_tables.PROJECTED, registry_tables.projection_position]
    with projection.engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in tables}


# --- migrations -----------------------------------------------------------------------------------------


def test_alembic_upgrade_from_empty_builds_exactly_the_tables_the_code_queries(engine: Engine) -> None:
    assert registry_migrations.current_revision(engine) is None
    registry_migrations.upgrade(engine)
    registry_migrations.upgrade(engine)  # idempotent
    assert registry_migrations.current_revision(engine) == "0002"
    schema = schema_of(engine)
    expected = registry_tables.metadata
    if schema is not None:  # the same tables, placed in the test's schema
        expected = MetaData()
        for table in registry_tables.metadata.tables.values():
            table.to_metadata(expected, schema=schema)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": schema is not None,
                "version_table_schema": schema,
                "include_name": lambda name, kind, _: kind != "schema" or name == schema,
            },
        )
        assert compare_metadata(context, expected) == []
    registry_migrations.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names(schema=schema)) <= {"alembic_version"}


def test_a_registry_from_before_alembic_is_adopted_and_reprojected(engine: Engine) -> None:
    registry_migrations.upgrade(engine, "0001")  # the create_all-era tables ...
    with engine.begin() as conn:  # ... without Alembic's bookkeeping, holding a projection at position 9
        conn.execute(DropTable(Table("alembic_version", MetaData())))  # schema-translated like the rest
        conn.execute(insert(registry_tables.projection_position).values(stream="MODELS", last_sequence=9))
    assert registry_migrations.current_revision(engine) is None
    registry = RegistryProjection(engine)
    registry.create()
    assert registry_migrations.current_revision(engine) == "0002"
    assert registry.position() == 0  # the projection is re-applied from the stream with the new columns
    history = lifecycle()
    assert all(registry.apply(event, seq) for event, seq in history)


# --- projection -----------------------------------------------------------------------------------------


def test_apply_builds_the_registry_with_full_lineage(projection: RegistryProjection) -> None:
    history = lifecycle()
    assert all(projection.apply(event, seq) for event, seq in history)
    assert projection.position() == history[-1][1]
    versions = projection.list_versions(NAME)
    assert [(v.version, v.stage, v.role) for v in versions] == [
        ("1.0.0", Stage.DEPLOYED, Role.CHAMPION),
        ("1.1.0", Stage.RETIRED, None),
    ]
    current = projection.get(NAME, "1.0.0")
    assert current is not None
    assert current.approvers == ("alice", "bob") and current.triton_model_name == f"{NAME}-1-0-0"
    assert current.feature_names == ("amount", "count") and current.params == {"depth": "6"}
    assert current.code_revision == "abc123" and current.explainer_artifact_sha256 == "ef" * 32
    assert current.data_split == {"train": "2026-01-01/2026-01-21"}
    assert current.validation_checks == {"onnx_checker": "passed"}
    assert current.registered_at == T0 + timedelta(minutes=1) and current.retired_at is None
    assert [v.version for v in projection.serving()] == ["1.0.0"]
    assert projection.list_versions("another-model") == []

    lineage = projection.lineage(NAME, "1.1.0")
    assert lineage is not None
    assert lineage.reference_profile == {
        "histograms": [{"feature": "amount", "binEdges": [0.0, 10.0, 100.0], "frequencies": [0.75, 0.25]}],
        "rows": "100",
    }
    assert [(a.approver, a.comment) for a in lineage.approvals] == [("alice", "looks good"), ("bob", "looks good")]
    assert [(h.kind, h.actor, h.role, h.canary_percent, h.other_version) for h in lineage.history] == [
        ("validated", "", None, 0, ""),
        ("deployed", "ops", Role.CANARY, 25, ""),
        ("promoted", "owner", Role.CHAMPION, 0, "1.0.0"),
        ("retired", "oncall", None, 0, ""),
    ]
    assert projection.lineage(NAME, "9.9.9") is None
    rows = snapshot(projection)
    assert [len(rows[t]) for t in ("deployments", "promotions", "rollbacks", "retirements", "approvals")] == [
        2,
        1,
        1,
        2,
        4,
    ]


def test_champion_at_follows_deployments_promotions_and_rollbacks(projection: RegistryProjection) -> None:
    history = lifecycle()
    for event, seq in history:
        projection.apply(event, seq)

    def champion(at: datetime) -> str | None:
        found = projection.champion_at(NAME, at)
        return found.version if found else None

    deployed = at_event(history, ev.ModelDeployed)
    promoted, rolled_back = at_event(history, ev.ModelPromoted), at_event(history, ev.ModelRolledBack)
    assert champion(deployed - timedelta(seconds=1)) is None
    assert champion(deployed) == "1.0.0"
    assert champion(promoted - timedelta(seconds=1)) == "1.0.0"  # the canary never was champion
    assert champion(promoted) == "1.1.0"
    assert champion(rolled_back - timedelta(seconds=1)) == "1.1.0"
    assert champion(rolled_back) == champion(rolled_back + timedelta(days=365)) == "1.0.0"
    assert champion(promoted.replace(tzinfo=None)) == "1.1.0"  # naive = UTC
    assert projection.champion_at("another-model", rolled_back) is None


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
    assert [again.apply(e, s) for e, s in history] == [False, False] + [True] * (len(history) - 2)


def test_racing_followers_apply_each_event_once(projection: RegistryProjection) -> None:
    history = lifecycle()

    def follow() -> int:
        return sum(projection.apply(event, seq) for event, seq in history)

    with ThreadPoolExecutor(max_workers=3) as pool:
        applied = list(pool.map(lambda _: follow(), range(3)))
    assert sum(applied) == len(history)
    assert len(snapshot(projection)["approvals"]) == 4


def test_rebuild_gives_the_same_rows(projection: RegistryProjection) -> None:
    history = lifecycle()
    for event, seq in history:
        projection.apply(event, seq)
    before = snapshot(projection)
    assert projection.rebuild(history) == len(history)
    assert snapshot(projection) == before
