"""Read models: what the registry answers about a version (built by the projection, not by the aggregate)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
