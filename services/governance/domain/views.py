"""Read models: what the registry answers about a version (built by the projection, not by the aggregate)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.governance.domain.commands import Role
from services.governance.domain.model import Stage


@dataclass(frozen=True)
class VersionView:
    """One model version as the registry lists it."""

    model_name: str
    version: str
    stage: Stage
    role: Role | None
    canary_percent: int
    artifact_sha256: str
    dataset_sha256: str
    feature_set_version: str
    feature_names: tuple[str, ...]
    review_threshold: float
    decline_threshold: float
    registered_by: str
    registered_at: datetime
    code_revision: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    approvers: tuple[str, ...] = ()
    triton_model_name: str = ""
    deployed_at: datetime | None = None
    explainer_artifact_sha256: str = ""
    validation_checks: Mapping[str, str] = field(default_factory=dict)
    data_split: Mapping[str, str] = field(default_factory=dict)
    validated_at: datetime | None = None
    retired_at: datetime | None = None


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval as recorded."""

    approver: str
    comment: str
    approved_at: datetime


@dataclass(frozen=True)
class LifecycleRecord:
    """One lifecycle event of a version (validated, deployed, promoted, rolled_back, retired)."""

    kind: str
    at: datetime
    stream_seq: int
    actor: str = ""
    role: Role | None = None
    canary_percent: int = 0
    reason: str = ""
    other_version: str = ""


@dataclass(frozen=True)
class Lineage:
    """Everything the registry knows about a version: the view, approvals, history and reference profile."""

    version: VersionView
    approvals: tuple[ApprovalRecord, ...]
    history: tuple[LifecycleRecord, ...]
    reference_profile: Mapping[str, Any] | None = None  # ReferenceProfile in protobuf JSON form


@dataclass(frozen=True)
class RecordedDecision:
    """A transaction's PredictionMade (as recorded) joined with the registry's view of its model."""

    prediction: Any  # fraud.events.v1.PredictionMade
    stream_seq: int
    model: VersionView | None
