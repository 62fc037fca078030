"""Commands: what a caller asks governance to do (imperative names; events are their past tense).

The actor of each command (``registered_by``, ``approver``, ``deployed_by``, ``promoted_by``, ``rolled_back_by``)
is the authenticated caller's principal id (``user:alice``, ``service:monitor``), filled in by the gRPC
entrypoint from `current_principal()`, never from a request field: four eyes compare these ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from google.protobuf.message import Message


class Role(StrEnum):
    """How a deployed version takes part in decisions."""

    CHAMPION = "champion"
    CANARY = "canary"
    SHADOW = "shadow"


@dataclass(frozen=True)
class RegisterModel:
    """Register a new version of a model with its ONNX artifact, optional explainer and lineage."""

    model_name: str
    version: str
    onnx_model: bytes
    dataset_sha256: str
    feature_set_version: str
    feature_names: tuple[str, ...]
    review_threshold: float
    decline_threshold: float
    registered_by: str
    code_revision: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    explainer_model: bytes = b""
    reference_profile: Message | None = None  # fraud.events.v1.ReferenceProfile
    data_split: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApproveModel:
    """One approver's sign-off on a validated version."""

    model_name: str
    version: str
    approver: str
    comment: str = ""


@dataclass(frozen=True)
class DeployModel:
    """Load an approved version into the inference server and serve it in a role."""

    model_name: str
    version: str
    role: Role
    deployed_by: str
    canary_percent: int = 0


@dataclass(frozen=True)
class PromoteModel:
    """Make a deployed canary or shadow version the champion (the old champion retires)."""

    model_name: str
    version: str
    promoted_by: str
    reason: str = ""


@dataclass(frozen=True)
class RollbackModel:
    """Restore the champion before the current one (the current one retires)."""

    model_name: str
    rolled_back_by: str
    reason: str = ""
