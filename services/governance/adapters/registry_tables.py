"""Registry tables (SQLAlchemy Core) and the engine factory: SQLite by default, PostgreSQL by URL.

The schema is created with ``metadata.create_all`` for now; Alembic migrations replace that in a later issue.
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
)
approvals = Table(
    "approvals",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False, index=True),
    Column("version", String(32), nullable=False),
    Column("approver", String(256), nullable=False),
    Column("comment", String, nullable=False),
    Column("approved_at", _TS, nullable=False),
)
deployments = Table(
    "deployments",
    metadata,
    Column("stream_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("model_name", String(64), nullable=False, index=True),
    Column("version", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("canary_percent", Integer, nullable=False),
    Column("triton_model_name", String(128), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("deployed_by", String(256), nullable=False),
    Column("deployed_at", _TS, nullable=False),
)
projection_position = Table(
    "projection_position",
    metadata,
    Column("stream", String(64), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)


def default_database_url(var_dir: Path) -> str:
    """SQLite file under the var dir: ``sqlite:///<var>/governance/registry.db``."""
    return f"sqlite:///{(var_dir / 'governance' / 'registry.db').resolve()}"


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url`` (SQLite file or ``postgresql+psycopg://``), tables placed in ``schema`` if given.

    The schema is applied with SQLAlchemy's schema translation, so the same table definitions serve every
    deployment (and a test run can use its own throw-away PostgreSQL schema).
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if schema is not None:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        engine = engine.execution_options(schema_translate_map={None: schema})
    return engine
