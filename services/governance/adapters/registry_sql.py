"""The registry: a SQLAlchemy projection of the model events (SQLite by default, PostgreSQL by URL).

Tables (`registry_tables`): ``model_versions`` (one row per version: lineage, current stage and role),
``approvals``, ``deployments``, ``promotions``, ``rollbacks``, ``retirements`` (one row per event, keyed by
stream sequence, so history is queryable) and ``projection_position``. `RegistryProjection.apply` writes
the rows and the position in one transaction and skips any event at or below the position: exactly-once
effects even when two followers apply the same event. The rows are disposable: `rebuild` empties them and
re-applies the stream. The schema comes from the Alembic migrations (`create` runs them).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from services.governance.adapters import registry_migrations, registry_reads
from services.governance.adapters.registry_tables import (
    PROJECTED,
    approvals,
    deployments,
    model_versions,
    projection_position,
    promotions,
    retirements,
    rollbacks,
)
from services.governance.domain import events as ev
from services.governance.domain.commands import Role
from services.governance.domain.model import REQUIRED_APPROVALS, Stage
from services.governance.domain.views import Lineage, VersionView

DEFAULT_STREAM = "MODELS"


class RegistryProjection:
    """Model-event projection over one SQLAlchemy engine; implements the `Registry` port."""

    def __init__(self, engine: Engine, stream: str = DEFAULT_STREAM) -> None:
        """Binds to ``engine``; call `create` before use."""
        self.engine = engine
        self.stream = stream

    def create(self) -> None:
        """Upgrades the schema to the newest migration and adds the position row (idempotent)."""
        registry_migrations.upgrade(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(self._position_query()).first() is None:
                conn.execute(insert(projection_position).values(stream=self.stream, last_sequence=0))

    def rebuild(self, history: Iterable[tuple[Message, int]]) -> int:
        """Empties the projection and re-applies ``(event, stream sequence)`` pairs in stream order.

        Returns:
            The number of events applied.
        """
        with self.engine.begin() as conn:
            for table in PROJECTED:
                conn.execute(delete(table))
            conn.execute(
                update(projection_position).where(projection_position.c.stream == self.stream).values(last_sequence=0)
            )
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
            _WRITERS.get(type(event), _ignore)(conn, event, stream_seq)
        return True

    def _position_query(self) -> Any:
        return select(projection_position.c.last_sequence).where(projection_position.c.stream == self.stream)

    # ---- reads (registry_reads) ----------------------------------------------------------------------

    def get(self, model_name: str, version: str) -> VersionView | None:
        """One version, or None."""
        return registry_reads.get(self.engine, model_name, version)

    def lineage(self, model_name: str, version: str) -> Lineage | None:
        """One version with its approvals, lifecycle history and reference profile, or None."""
        return registry_reads.lineage(self.engine, model_name, version)

    def list_versions(self, model_name: str | None = None) -> list[VersionView]:
        """Registered versions, oldest registration first, optionally of one model."""
        return registry_reads.list_versions(self.engine, model_name)

    def serving(self) -> list[VersionView]:
        """Versions deployed now, with their roles."""
        return registry_reads.serving(self.engine)

    def champion_at(self, model_name: str, moment: datetime) -> VersionView | None:
        """The version that was champion of ``model_name`` at ``moment`` (by the events' business times)."""
        return registry_reads.champion_at(self.engine, model_name, moment)


def _key(model_name: str, version: str) -> tuple[Any, Any]:
    return model_versions.c.model_name == model_name, model_versions.c.version == version


def _time(stamp: Any) -> datetime:
    return stamp.ToDatetime(UTC)


def _registered(conn: Connection, event: ev.ModelRegistered, seq: int) -> None:
    profile = MessageToDict(event.reference_profile) if event.HasField("reference_profile") else None
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
            registered_at=_time(event.registered_at),
            triton_model_name="",
            registered_seq=seq,
            explainer_artifact_sha256=event.explainer_artifact_sha256,
            reference_profile=profile,
            data_split=dict(sorted(event.data_split.items())),
            validation_checks={},
        )
    )


def _validated(conn: Connection, event: ev.ModelValidated, seq: int) -> None:
    conn.execute(
        update(model_versions)
        .where(*_key(event.model_name, event.version), model_versions.c.stage == Stage.REGISTERED.value)
        .values(
            stage=Stage.VALIDATED.value,
            validation_checks=dict(sorted(event.checks.items())),
            validated_at=_time(event.validated_at),
            validated_seq=seq,
        )
    )


def _approved(conn: Connection, event: ev.ModelApproved, seq: int) -> None:
    conn.execute(
        insert(approvals).values(
            stream_seq=seq,
            model_name=event.model_name,
            version=event.version,
            approver=event.approver,
            comment=event.comment,
            approved_at=_time(event.approved_at),
        )
    )
    signers = conn.execute(
        select(func.count(approvals.c.approver.distinct())).where(
            approvals.c.model_name == event.model_name, approvals.c.version == event.version
        )
    ).scalar_one()
    if signers >= REQUIRED_APPROVALS:
        conn.execute(
            update(model_versions)
            .where(*_key(event.model_name, event.version), model_versions.c.stage == Stage.VALIDATED.value)
            .values(stage=Stage.APPROVED.value)
        )


def _deployed(conn: Connection, event: ev.ModelDeployed, seq: int) -> None:
    role = ev.role_from_proto(event.role)
    deployed_at = _time(event.deployed_at)
    conn.execute(
        insert(deployments).values(
            stream_seq=seq,
            model_name=event.model_name,
            version=event.version,
            role=role.value,
            canary_percent=event.canary_percent,
            triton_model_name=event.triton_model_name,
            artifact_sha256=event.artifact_sha256,
            deployed_by=event.deployed_by,
            deployed_at=deployed_at,
        )
    )
    _take_role(conn, event.model_name, event.version, role, event.canary_percent)
    conn.execute(
        update(model_versions)
        .where(*_key(event.model_name, event.version))
        .values(triton_model_name=event.triton_model_name, deployed_at=deployed_at)
    )


def _promoted(conn: Connection, event: ev.ModelPromoted, seq: int) -> None:
    conn.execute(
        insert(promotions).values(
            stream_seq=seq,
            model_name=event.model_name,
            version=event.version,
            previous_version=event.previous_version,
            promoted_by=event.promoted_by,
            reason=event.reason,
            promoted_at=_time(event.promoted_at),
        )
    )
    _take_role(conn, event.model_name, event.version, Role.CHAMPION, 0)


def _rolled_back(conn: Connection, event: ev.ModelRolledBack, seq: int) -> None:
    conn.execute(
        insert(rollbacks).values(
            stream_seq=seq,
            model_name=event.model_name,
            from_version=event.from_version,
            to_version=event.to_version,
            rolled_back_by=event.rolled_back_by,
            reason=event.reason,
            rolled_back_at=_time(event.rolled_back_at),
        )
    )
    _take_role(conn, event.model_name, event.to_version, Role.CHAMPION, 0)


def _retired(conn: Connection, event: ev.ModelRetired, seq: int) -> None:
    retired_at = _time(event.retired_at)
    conn.execute(
        insert(retirements).values(
            stream_seq=seq,
            model_name=event.model_name,
            version=event.version,
            retired_by=event.retired_by,
            reason=event.reason,
            retired_at=retired_at,
        )
    )
    conn.execute(
        update(model_versions)
        .where(*_key(event.model_name, event.version))
        .values(stage=Stage.RETIRED.value, role=None, canary_percent=0, retired_at=retired_at)
    )


def _take_role(conn: Connection, model_name: str, version: str, role: Role, canary_percent: int) -> None:
    # One version per role and model: the previous holder leaves service at this event (as in the aggregate;
    # its ModelRetired follows and records who and why).
    conn.execute(
        update(model_versions)
        .where(
            model_versions.c.model_name == model_name,
            model_versions.c.version != version,
            model_versions.c.role == role.value,
            model_versions.c.stage == Stage.DEPLOYED.value,
        )
        .values(stage=Stage.RETIRED.value, role=None, canary_percent=0)
    )
    conn.execute(
        update(model_versions)
        .where(*_key(model_name, version))
        .values(stage=Stage.DEPLOYED.value, role=role.value, canary_percent=canary_percent, retired_at=None)
    )


def _ignore(conn: Connection, event: Message, seq: int) -> None:
    """Events of kinds this projection does not know (the stream may grow new ones) only move the position."""


_WRITERS: dict[type[Message], Any] = {
    ev.ModelRegistered: _registered,
    ev.ModelValidated: _validated,
    ev.ModelApproved: _approved,
    ev.ModelDeployed: _deployed,
    ev.ModelPromoted: _promoted,
    ev.ModelRolledBack: _rolled_back,
    ev.ModelRetired: _retired,
}
