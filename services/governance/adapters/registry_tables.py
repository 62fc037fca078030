"""Registry tables (SQLAlchemy Core) as of the newest migration, and the engine factory.

The schema itself is created and evolved only by the Alembic migrations in ``services/governance/migrations``
(`registry_migrations.upgrade`); these definitions are what the queries use, and a test checks that they
match what the migrations build (on SQLite and PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    text,
)

metadata = MetaData()
_TS = DateTime(timezone=True)
model_versions = Table(
    "model_versions",
    metadata,
    Column("model_name", String(64), primary_key=True),
    Column("version", String(32), primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("role", String(16)),
    Column("canary_percent", Integer, nullable=False, default=0),
    Column("artifact_sha256", String(64), nullable=False),
    Column("dataset_sha256", String(64), nullable=False),
    Column("feature_set_version", String(128), nullable=False),
    Column("feature_names", JSON, nullable=False),
    Column("code_revision", String(128), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("review_threshold", Float, nullable=False),
    Column("decline_threshold", Float, nullable=False),
    Column("registered_by", String(256), nullable=False),
    Column("registered_at", _TS, nullable=False),
    Column("triton_model_name", String(128), nullable=False, default=""),
    Column("deployed_at", _TS),
    Column("registered_seq", BigInteger, nullable=False),
    # Added by migration 0002 (lineage).
    Column("explainer_artifact_sha256", String(64), nullable=False, server_default=""),
    Column("reference_profile", JSON),
    Column("data_split", JSON),
    Column("validation_checks", JSON),
    Column("validated_at", _TS),
    Column("validated_seq", BigInteger),
    Column("retired_at", _TS),
)
approvals = Table(
    "approvals",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("approver", String(256), nullable=False),
    Column("comment", String, nullable=False),
    Column("approved_at", _TS, nullable=False),
    Index("ix_approvals_model_name", "model_name"),
)
deployments = Table(
    "deployments",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("canary_percent", Integer, nullable=False),
    Column("triton_model_name", String(128), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("deployed_by", String(256), nullable=False),
    Column("deployed_at", _TS, nullable=False),
    Index("ix_deployments_model_name", "model_name"),
)
promotions = Table(
    "promotions",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("previous_version", String(32), nullable=False),
    Column("promoted_by", String(256), nullable=False),
    Column("reason", String, nullable=False),
    Column("promoted_at", _TS, nullable=False),
    Index("ix_promotions_model_name", "model_name"),
)
rollbacks = Table(
    "rollbacks",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False),
    Column("from_version", String(32), nullable=False),
    Column("to_version", String(32), nullable=False),
    Column("rolled_back_by", String(256), nullable=False),
    Column("reason", String, nullable=False),
    Column("rolled_back_at", _TS, nullable=False),
    Index("ix_rollbacks_model_name", "model_name"),
)
retirements = Table(
    "retirements",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("retired_by", String(256), nullable=False),
    Column("reason", String, nullable=False),
    Column("retired_at", _TS, nullable=False),
    Index("ix_retirements_model_name", "model_name"),
)
projection_position = Table(
    "projection_position",
    metadata,
    Column("stream", String(64), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)
# Every table whose rows are derived from the stream (emptied by a rebuild).
PROJECTED = (approvals, deployments, promotions, rollbacks, retirements, model_versions)


def default_database_url(var_dir: Path) -> str:
    """SQLite file under the var dir: ``sqlite:///<var>/governance/registry.db``."""
    return f"sqlite:///{(var_dir / 'governance' / 'registry.db').resolve()}"


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url`` (SQLite file or ``postgresql+psycopg://``), tables placed in ``schema`` if given.

    The schema is applied with SQLAlchemy's schema translation, so the same table definitions serve every
    deployment (and a test run can use its own throw-away PostgreSQL schema); the migrations read it back
    with `schema_of`.
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if schema is not None:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        engine = engine.execution_options(schema_translate_map={None: schema})
    return engine


def schema_of(engine: Engine) -> str | None:
    """The schema `make_engine` placed the tables in (None = the database's default)."""
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    return translate.get(None)
