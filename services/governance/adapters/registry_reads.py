"""Queries over the registry tables: versions, lineage (approvals + lifecycle history), champion at a time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, union_all
from sqlalchemy.engine import Connection, RowMapping

from services.governance.adapters.registry_tables import (
    approvals,
    deployments,
    model_versions,
    promotions,
    retirements,
    rollbacks,
)
from services.governance.domain.commands import Role
from services.governance.domain.model import Stage
from services.governance.domain.views import ApprovalRecord, LifecycleRecord, Lineage, VersionView


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _key(model_name: str, version: str) -> tuple[Any, Any]:
    return model_versions.c.model_name == model_name, model_versions.c.version == version


def get(engine: Engine, model_name: str, version: str) -> VersionView | None:
    """One version, or None."""
    found = _views(engine, select(model_versions).where(*_key(model_name, version)))
    return found[0] if found else None


def list_versions(engine: Engine, model_name: str | None = None) -> list[VersionView]:
    """Registered versions, oldest registration first, optionally of one model."""
    query = select(model_versions).order_by(model_versions.c.registered_seq)
    if model_name:
        query = query.where(model_versions.c.model_name == model_name)
    return _views(engine, query)


def serving(engine: Engine) -> list[VersionView]:
    """Versions deployed now, with their roles."""
    query = (
        select(model_versions)
        .where(model_versions.c.stage == Stage.DEPLOYED.value)
        .order_by(model_versions.c.model_name, model_versions.c.role)
    )
    return _views(engine, query)


def champion_at(engine: Engine, model_name: str, moment: datetime) -> VersionView | None:
    """The version that was champion at ``moment``.

    That is the version of the last champion change (deployed as champion, promoted, rolled back to) at or
    before ``moment``, by event time, then stream order.
    """
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    changes = union_all(
        select(deployments.c.version, deployments.c.deployed_at.label("at"), deployments.c.stream_seq.label("seq"))
        .where(deployments.c.model_name == model_name, deployments.c.role == Role.CHAMPION.value)
        .where(deployments.c.deployed_at <= moment),
        select(promotions.c.version, promotions.c.promoted_at, promotions.c.stream_seq).where(
            promotions.c.model_name == model_name, promotions.c.promoted_at <= moment
        ),
        select(rollbacks.c.to_version, rollbacks.c.rolled_back_at, rollbacks.c.stream_seq).where(
            rollbacks.c.model_name == model_name, rollbacks.c.rolled_back_at <= moment
        ),
    ).subquery()
    query = select(changes.c.version).order_by(changes.c.at.desc(), changes.c.seq.desc()).limit(1)
    with engine.connect() as conn:
        version = conn.execute(query).scalar()
    return None if version is None else get(engine, model_name, version)


def lineage(engine: Engine, model_name: str, version: str) -> Lineage | None:
    """One version with approvals, lifecycle history (oldest first) and reference profile, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(*_key(model_name, version))).mappings().first()
        if row is None:
            return None
        signed = conn.execute(
            select(approvals)
            .where(approvals.c.model_name == model_name, approvals.c.version == version)
            .order_by(approvals.c.stream_seq)
        ).mappings()
        records = [ApprovalRecord(a["approver"], a["comment"], _utc(a["approved_at"]) or _EPOCH) for a in signed]
        history = _history(conn, row)
    view = _view(row, [a.approver for a in records])
    return Lineage(view, tuple(records), tuple(history), row["reference_profile"])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(moment: datetime | None) -> datetime:
    return _utc(moment) or _EPOCH


def _history(conn: Connection, row: RowMapping) -> list[LifecycleRecord]:
    name, version = row["model_name"], row["version"]
    history: list[LifecycleRecord] = []
    if row["validated_seq"] is not None:
        checks = ", ".join(sorted(row["validation_checks"] or {}))
        history.append(LifecycleRecord("validated", _at(row["validated_at"]), row["validated_seq"], reason=checks))
    for d in conn.execute(
        select(deployments).where(deployments.c.model_name == name, deployments.c.version == version)
    ).mappings():
        history.append(
            LifecycleRecord(
                "deployed",
                _at(d["deployed_at"]),
                d["stream_seq"],
                actor=d["deployed_by"],
                role=Role(d["role"]),
                canary_percent=d["canary_percent"],
            )
        )
    for p in conn.execute(
        select(promotions).where(promotions.c.model_name == name, promotions.c.version == version)
    ).mappings():
        history.append(
            LifecycleRecord(
                "promoted",
                _at(p["promoted_at"]),
                p["stream_seq"],
                actor=p["promoted_by"],
                role=Role.CHAMPION,
                reason=p["reason"],
                other_version=p["previous_version"],
            )
        )
    for r in conn.execute(
        select(rollbacks).where(rollbacks.c.model_name == name, rollbacks.c.to_version == version)
    ).mappings():
        history.append(
            LifecycleRecord(
                "rolled_back",
                _at(r["rolled_back_at"]),
                r["stream_seq"],
                actor=r["rolled_back_by"],
                role=Role.CHAMPION,
                reason=r["reason"],
                other_version=r["from_version"],
            )
        )
    for t in conn.execute(
        select(retirements).where(retirements.c.model_name == name, retirements.c.version == version)
    ).mappings():
        retired = LifecycleRecord("retired", _at(t["retired_at"]), t["stream_seq"], actor=t["retired_by"])
        history.append(dataclasses.replace(retired, reason=t["reason"]))
    return sorted(history, key=lambda record: record.stream_seq)


def _views(engine: Engine, query: Any) -> list[VersionView]:
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        signers: dict[tuple[str, str], list[str]] = {}
        if rows:
            names = {row["model_name"] for row in rows}
            for a in conn.execute(
                select(approvals).where(approvals.c.model_name.in_(names)).order_by(approvals.c.stream_seq)
            ).mappings():
                signers.setdefault((a["model_name"], a["version"]), []).append(a["approver"])
    return [_view(row, signers.get((row["model_name"], row["version"]), [])) for row in rows]


def _view(row: RowMapping, approvers: list[str]) -> VersionView:
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
        registered_at=_utc(row["registered_at"]) or _EPOCH,
        code_revision=row["code_revision"],
        params=dict(row["params"]),
        metrics=dict(row["metrics"]),
        approvers=tuple(approvers),
        triton_model_name=row["triton_model_name"],
        deployed_at=_utc(row["deployed_at"]),
        explainer_artifact_sha256=row["explainer_artifact_sha256"],
        validation_checks=dict(row["validation_checks"] or {}),
        data_split=dict(row["data_split"] or {}),
        validated_at=_utc(row["validated_at"]),
        retired_at=_utc(row["retired_at"]),
    )
