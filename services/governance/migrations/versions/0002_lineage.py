"""Full lineage: explainer, reference profile, data split, validation, retirement; promotions, rollbacks, retirements.

The projection's meaning changes (new columns filled from events already on the stream, the validated stage),
so the projection is emptied and its position reset: the service re-applies the MODELS stream on start.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _new_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("explainer_artifact_sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("reference_profile", sa.JSON),
        sa.Column("data_split", sa.JSON),
        sa.Column("validation_checks", sa.JSON),
        sa.Column("validated_at", _TS),
        sa.Column("validated_seq", sa.BigInteger),
        sa.Column("retired_at", _TS),
    )


def upgrade() -> None:
    for column in _new_columns():
        op.add_column("model_versions", column)
    op.create_table(
        "promotions",
        sa.Column("stream_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("previous_version", sa.String(32), nullable=False),
        sa.Column("promoted_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("promoted_at", _TS, nullable=False),
    )
    op.create_index("ix_promotions_model_name", "promotions", ["model_name"])
    op.create_table(
        "rollbacks",
        sa.Column("stream_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("from_version", sa.String(32), nullable=False),
        sa.Column("to_version", sa.String(32), nullable=False),
        sa.Column("rolled_back_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("rolled_back_at", _TS, nullable=False),
    )
    op.create_index("ix_rollbacks_model_name", "rollbacks", ["model_name"])
    op.create_table(
        "retirements",
        sa.Column("stream_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("retired_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("retired_at", _TS, nullable=False),
    )
    op.create_index("ix_retirements_model_name", "retirements", ["model_name"])
    _reset_projection()


def downgrade() -> None:
    for name in ("retirements", "rollbacks", "promotions"):
        op.drop_table(name)
    with op.batch_alter_table("model_versions") as batch:
        for column in reversed(_new_columns()):
            batch.drop_column(column.name)
    _reset_projection()


def _reset_projection() -> None:
    for name in ("approvals", "deployments", "model_versions"):
        op.execute(sa.table(name).delete())
    op.execute(sa.table("projection_position", sa.column("last_sequence")).update().values(last_sequence=0))
