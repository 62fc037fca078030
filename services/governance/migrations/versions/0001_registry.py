"""Registry tables as the first governance release created them (before Alembic).

Registries created back then (with ``metadata.create_all``) already have these tables: each is created only
if missing, so such a database is adopted as revision 0001 and then upgraded like any other.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("model_versions"):
        op.create_table(
            "model_versions",
            sa.Column("model_name", sa.String(64), primary_key=True),
            sa.Column("version", sa.String(32), primary_key=True),
            sa.Column("stage", sa.String(16), nullable=False),
            sa.Column("role", sa.String(16)),
            sa.Column("canary_percent", sa.Integer, nullable=False),
            sa.Column("artifact_sha256", sa.String(64), nullable=False),
            sa.Column("dataset_sha256", sa.String(64), nullable=False),
            sa.Column("feature_set_version", sa.String(128), nullable=False),
            sa.Column("feature_names", sa.JSON, nullable=False),
            sa.Column("code_revision", sa.String(128), nullable=False),
            sa.Column("params", sa.JSON, nullable=False),
            sa.Column("metrics", sa.JSON, nullable=False),
            sa.Column("review_threshold", sa.Float, nullable=False),
            sa.Column("decline_threshold", sa.Float, nullable=False),
            sa.Column("registered_by", sa.String(256), nullable=False),
            sa.Column("registered_at", _TS, nullable=False),
            sa.Column("triton_model_name", sa.String(128), nullable=False),
            sa.Column("deployed_at", _TS),
            sa.Column("registered_seq", sa.BigInteger, nullable=False),
        )
    if _missing("approvals"):
        op.create_table(
            "approvals",
            sa.Column("stream_seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("model_name", sa.String(64), nullable=False),
            sa.Column("version", sa.String(32), nullable=False),
            sa.Column("approver", sa.String(256), nullable=False),
            sa.Column("comment", sa.String, nullable=False),
            sa.Column("approved_at", _TS, nullable=False),
        )
        op.create_index("ix_approvals_model_name", "approvals", ["model_name"])
    if _missing("deployments"):
        op.create_table(
            "deployments",
            sa.Column("stream_seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("model_name", sa.String(64), nullable=False),
            sa.Column("version", sa.String(32), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("canary_percent", sa.Integer, nullable=False),
            sa.Column("triton_model_name", sa.String(128), nullable=False),
            sa.Column("artifact_sha256", sa.String(64), nullable=False),
            sa.Column("deployed_by", sa.String(256), nullable=False),
            sa.Column("deployed_at", _TS, nullable=False),
        )
        op.create_index("ix_deployments_model_name", "deployments", ["model_name"])
    if _missing("projection_position"):
        op.create_table(
            "projection_position",
            sa.Column("stream", sa.String(64), primary_key=True),
            sa.Column("last_sequence", sa.BigInteger, nullable=False),
        )


def downgrade() -> None:
    for name in ("projection_position", "deployments", "approvals", "model_versions"):
        op.drop_table(name)
