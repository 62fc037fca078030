"""The registry: a SQLAlchemy projection of the model events (SQLite by default, PostgreSQL by URL).

Tables: ``model_versions`` (one row per version, its current stage and role), ``approvals`` and
``deployments`` (one row per event, keyed by stream sequence, so history is queryable) and
``projection_position`` (the last stream sequence applied). `RegistryProjection.apply` writes the rows and
the position in one transaction and skips any event at or below the position: exactly-once effects even
when two followers apply the same event. The tables are disposable: `RegistryProjection.rebuild` drops
them and re-applies the stream. Schema is created with ``metadata.create_all`` until Alembic arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from services.governance.adapters.registry_tables import (
    approvals,
    deployments,
    metadata,
    model_versions,
    projection_position,
)
from services.governance.domain import events as ev
from services.governance.domain.commands import Role
from services.governance.domain.model import REQUIRED_APPROVALS, Stage
from services.governance.domain.views import VersionView

DEFAULT_STREAM = "MODELS"


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class RegistryProjection:
    """Model-event projection over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, stream: str = DEFAULT_STREAM) -> None:
        """Binds to ``engine``; call `create` before use."""
        self.engine = engine
        self.stream = stream

    def create(self) -> None:
        """Creates missing tables and the position row (idempotent)."""
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(self._position_query()).first() is None:
                conn.execute(insert(projection_position).values(stream=self.stream, last_sequence=0))

    def drop(self) -> None:
        """Drops the projection's tables."""
        metadata.drop_all(self.engine)

    def rebuild(self, history: Iterable[tuple[Message, int]]) -> int:
        """Drops the tables and re-applies ``(event, stream sequence)`` pairs in stream order.

        Returns:
            The number of events applied.
        """
        self.drop()
        self.create()
        return sum(self.apply(event, seq) for event, seq in history)

    def position(self) -> int:
        """The last stream sequence applied (0 before any)."""
        with self.engine.connect() as conn:
            value = conn.execute(self._position_query()).scalar()
        return int(value or 0)

    def apply(self, event: Message, stream_seq: int) -> bool:
        """Applies one event and records ``stream_seq`` in the same transaction.

        Returns:
            False (and changes nothing) if ``stream_seq`` is at or below the recorded position.
        """
        with self.engine.begin() as conn:
            # The conditional update is the guard: it row-locks the position, so a racing follower waits
            # here and then sees the new position and skips.
            moved = conn.execute(
                update(projection_position)
                .where(projection_position.c.stream == self.stream, projection_position.c.last_sequence < stream_seq)
                .values(last_sequence=stream_seq)
            )
            if moved.rowcount == 0:
                return False
            self._write(conn, event, stream_seq)
        return True

    def _position_query(self) -> Any:
        return select(projection_position.c.last_sequence).where(projection_position.c.stream == self.stream)

    def _write(self, conn: Connection, event: Message, seq: int) -> None:
        if isinstance(event, ev.ModelRegistered):
            conn.execute(
                insert(model_versions).values(
                    model_name=event.model_name,
                    version=event.version,
                    stage=Stage.REGISTERED.value,
                    canary_percent=0,
                    artifact_sha256=event.artifact_sha256,
                    dataset_sha256=event.dataset_sha256,
                    feature_set_version=event.feature_set_version,
                    feature_names=list(event.feature_names),
                    code_revision=event.code_revision,
                    params=dict(sorted(event.params.items())),
                    metrics=dict(sorted(event.metrics.items())),
                    review_threshold=event.thresholds.review,
                    decline_threshold=event.thresholds.decline,
                    registered_by=event.registered_by,
                    registered_at=event.registered_at.ToDatetime(UTC),
                    triton_model_name="",
                    registered_seq=seq,
                )
            )
        elif isinstance(event, ev.ModelApproved):
            conn.execute(
                insert(approvals).values(
                    stream_seq=seq,
                    model_name=event.model_name,
                    version=event.version,
                    approver=event.approver,
                    comment=event.comment,
                    approved_at=event.approved_at.ToDatetime(UTC),
                )
            )
            self._maybe_approve(conn, event.model_name, event.version)
        elif isinstance(event, ev.ModelDeployed):
            self._deploy(conn, event, seq)

    def _maybe_approve(self, conn: Connection, model_name: str, version: str) -> None:
        count = conn.execute(
            select(func.count()).where(approvals.c.model_name == model_name, approvals.c.version == version)
        ).scalar_one()
        if count >= REQUIRED_APPROVALS:
            conn.execute(
                update(model_versions)
                .where(*_version_key(model_name, version), model_versions.c.stage == Stage.REGISTERED.value)
                .values(stage=Stage.APPROVED.value)
            )

    def _deploy(self, conn: Connection, event: ev.ModelDeployed, seq: int) -> None:
        role = ev.role_from_proto(event.role).value
        deployed_at = event.deployed_at.ToDatetime(UTC)
        conn.execute(
            insert(deployments).values(
                stream_seq=seq,
                model_name=event.model_name,
                version=event.version,
                role=role,
                canary_percent=event.canary_percent,
                triton_model_name=event.triton_model_name,
                artifact_sha256=event.artifact_sha256,
                deployed_by=event.deployed_by,
                deployed_at=deployed_at,
            )
        )
        # One version per role and model: the previous holder of the role is retired (as in the aggregate).
        conn.execute(
            update(model_versions)
            .where(
                model_versions.c.model_name == event.model_name,
                model_versions.c.version != event.version,
                model_versions.c.role == role,
                model_versions.c.stage == Stage.DEPLOYED.value,
            )
            .values(stage=Stage.RETIRED.value, role=None, canary_percent=0)
        )
        conn.execute(
            update(model_versions)
            .where(*_version_key(event.model_name, event.version))
            .values(
                stage=Stage.DEPLOYED.value,
                role=role,
                canary_percent=event.canary_percent,
                triton_model_name=event.triton_model_name,
                deployed_at=deployed_at,
            )
        )

    def list_versions(self, model_name: str | None = None) -> list[VersionView]:
        """Registered versions, oldest registration first, optionally of one model."""
        query = select(model_versions).order_by(model_versions.c.registered_seq)
        if model_name:
            query = query.where(model_versions.c.model_name == model_name)
        return self._views(query)

    def serving(self) -> list[VersionView]:
        """Versions deployed now, with their roles."""
        query = (
            select(model_versions)
            .where(model_versions.c.stage == Stage.DEPLOYED.value)
            .order_by(model_versions.c.model_name, model_versions.c.role)
        )
        return self._views(query)

    def get(self, model_name: str, version: str) -> VersionView | None:
        """One version, or None."""
        found = self._views(select(model_versions).where(*_version_key(model_name, version)))
        return found[0] if found else None

    def _views(self, query: Any) -> list[VersionView]:
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            signers: dict[tuple[str, str], list[str]] = {}
            if rows:
                names = {row["model_name"] for row in rows}
                for a in conn.execute(
                    select(approvals).where(approvals.c.model_name.in_(names)).order_by(approvals.c.stream_seq)
                ).mappings():
                    signers.setdefault((a["model_name"], a["version"]), []).append(a["approver"])
        return [_view(row, signers.get((row["model_name"], row["version"]), [])) for row in rows]


def _version_key(model_name: str, version: str) -> tuple[Any, Any]:
    return model_versions.c.model_name == model_name, model_versions.c.version == version


def _view(row: RowMapping, approvers: list[str]) -> VersionView:
    registered_at = _utc(row["registered_at"])
    assert registered_at is not None
    return VersionView(
        model_name=row["model_name"],
        version=row["version"],
        stage=Stage(row["stage"]),
        role=Role(row["role"]) if row["role"] else None,
        canary_percent=row["canary_percent"],
        artifact_sha256=row["artifact_sha256"],
        dataset_sha256=row["dataset_sha256"],
        feature_set_version=row["feature_set_version"],
        feature_names=tuple(row["feature_names"]),
        review_threshold=row["review_threshold"],
        decline_threshold=row["decline_threshold"],
        registered_by=row["registered_by"],
        registered_at=registered_at,
        code_revision=row["code_revision"],
        params=dict(row["params"]),
        metrics=dict(row["metrics"]),
        approvers=tuple(approvers),
        triton_model_name=row["triton_model_name"],
        deployed_at=_utc(row["deployed_at"]),
    )
