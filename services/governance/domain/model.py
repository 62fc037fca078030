"""The model aggregate: every version of one model, rebuilt from the events on the model's subject.

Stages of a version: registered -> approved -> deployed (champion, canary or shadow) -> retired. Deploying a
version into a role retires the version that held that role before (one champion, one canary, one shadow
per model). The decision functions are pure: they look at the aggregate and return the event to append, or
raise a `GovernanceError` that says why not; `Model.apply` folds an appended event into the state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from google.protobuf.message import Message

from services.governance.domain import events as ev
from services.governance.domain.commands import ApproveModel, DeployModel, RegisterModel, Role
from services.governance.domain.errors import (
    DuplicateVersion,
    InvalidCommand,
    InvalidTransition,
    UnknownVersion,
)

# Approvals that move a version from registered to approved. Issue 4 makes this two distinct people (four
# eyes) for production; the approvals list is kept so that rule needs no new state.
REQUIRED_APPROVALS = 1
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class Stage(StrEnum):
    """Where a version is in its lifecycle."""

    REGISTERED = "registered"
    APPROVED = "approved"
    DEPLOYED = "deployed"
    RETIRED = "retired"


@dataclass(frozen=True)
class Approval:
    """One approver's sign-off."""

    approver: str
    comment: str
    approved_at: datetime


@dataclass
class ModelVersion:
    """One registered version and where it is in its lifecycle."""

    model_name: str
    version: str
    artifact_sha256: str
    feature_names: tuple[str, ...]
    stage: Stage = Stage.REGISTERED
    approvals: list[Approval] = field(default_factory=list)
    role: Role | None = None
    canary_percent: int = 0
    triton_model_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.model_name}@{self.version}"


@dataclass
class Model:
    """All versions of one model plus the stream sequence of the last event read from its subject."""

    name: str
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    last_seq: int = 0

    @classmethod
    def from_history(cls, name: str, history: Iterable[tuple[Message, int]]) -> Model:
        """Folds ``(event, stream sequence)`` pairs, in subject order, into the aggregate."""
        model = cls(name)
        for event, seq in history:
            model.apply(event, seq)
        return model

    def get(self, version: str) -> ModelVersion:
        """The version, or `UnknownVersion`."""
        try:
            return self.versions[version]
        except KeyError:
            raise UnknownVersion(f"model {self.name} has no version {version}") from None

    def serving(self, role: Role) -> ModelVersion | None:
        """The version deployed in ``role``, if any."""
        return next((v for v in self.versions.values() if v.stage is Stage.DEPLOYED and v.role is role), None)

    def apply(self, event: Message, seq: int) -> None:
        """Folds one appended event into the state (events are facts: no validation here)."""
        if isinstance(event, ev.ModelRegistered):
            self.versions[event.version] = ModelVersion(
                event.model_name, event.version, event.artifact_sha256, tuple(event.feature_names)
            )
        elif isinstance(event, ev.ModelApproved):
            target = self.versions[event.version]
            target.approvals.append(Approval(event.approver, event.comment, event.approved_at.ToDatetime(UTC)))
            if target.stage is Stage.REGISTERED and len(target.approvals) >= REQUIRED_APPROVALS:
                target.stage = Stage.APPROVED
        elif isinstance(event, ev.ModelDeployed):
            role = ev.role_from_proto(event.role)
            displaced = self.serving(role)
            if displaced is not None and displaced.version != event.version:
                displaced.stage, displaced.role, displaced.canary_percent = Stage.RETIRED, None, 0
            target = self.versions[event.version]
            target.stage, target.role, target.canary_percent = Stage.DEPLOYED, role, event.canary_percent
            target.triton_model_name = event.triton_model_name
        self.last_seq = seq


def triton_model_name(model_name: str, version: str) -> str:
    """Name of a version in Triton's repository: ``<name>-<major>-<minor>-<patch>`` (unique, path-safe)."""
    return f"{model_name}-{version.replace('.', '-')}"


def decide_register(model: Model, command: RegisterModel, artifact_sha256: str, now: datetime) -> ev.ModelRegistered:
    """Checks a registration and returns the `ModelRegistered` event to append.

    Raises:
        DuplicateVersion: If the version is already registered.
        InvalidCommand: If the version is not semantic, thresholds are inverted or feature names repeat.
    """
    if command.model_name != model.name:
        raise InvalidCommand(f"command for model {command.model_name} given to aggregate {model.name}")
    if command.version in model.versions:
        raise DuplicateVersion(f"model {model.name} version {command.version} is already registered")
    if not _SEMVER.match(command.version):
        raise InvalidCommand(f"version {command.version!r} is not MAJOR.MINOR.PATCH")
    if not 0.0 <= command.review_threshold <= command.decline_threshold <= 1.0:
        raise InvalidCommand(
            f"thresholds must satisfy 0 <= review ({command.review_threshold}) <= decline "
            f"({command.decline_threshold}) <= 1"
        )
    if len(set(command.feature_names)) != len(command.feature_names) or not all(command.feature_names):
        raise InvalidCommand("feature names must be non-empty and distinct")
    event = ev.ModelRegistered(
        schema_version=ev.SCHEMA_VERSION,
        model_name=command.model_name,
        version=command.version,
        artifact_sha256=artifact_sha256,
        dataset_sha256=command.dataset_sha256,
        feature_set_version=command.feature_set_version,
        code_revision=command.code_revision,
        params=dict(command.params),
        metrics=dict(command.metrics),
        registered_by=command.registered_by,
        feature_names=list(command.feature_names),
    )
    event.thresholds.review, event.thresholds.decline = command.review_threshold, command.decline_threshold
    event.registered_at.FromDatetime(now)
    return event


def decide_approve(model: Model, command: ApproveModel, now: datetime) -> ev.ModelApproved:
    """Checks an approval and returns the `ModelApproved` event to append.

    Raises:
        UnknownVersion: If the version is not registered.
        InvalidTransition: If the version is past the registered stage or this approver already signed.
    """
    target = model.get(command.version)
    if target.stage is not Stage.REGISTERED:
        raise InvalidTransition(f"{target.key} is {target.stage}; only a registered version can be approved")
    if any(a.approver == command.approver for a in target.approvals):
        raise InvalidTransition(f"{command.approver} has already approved {target.key}")
    event = ev.ModelApproved(
        schema_version=ev.SCHEMA_VERSION,
        model_name=model.name,
        version=command.version,
        approver=command.approver,
        comment=command.comment,
    )
    event.approved_at.FromDatetime(now)
    return event


def check_deploy(model: Model, command: DeployModel) -> ModelVersion:
    """Checks, before anything is loaded, that the version may be deployed in the requested role.

    Raises:
        UnknownVersion: If the version is not registered.
        InvalidTransition: If the version is not approved (a deployed or retired one is refused too).
        InvalidCommand: If ``canary_percent`` does not fit the role.
    """
    target = model.get(command.version)
    if target.stage is not Stage.APPROVED:
        raise InvalidTransition(f"{target.key} is {target.stage}; only an approved version can be deployed")
    if command.role is Role.CANARY and not 1 <= command.canary_percent <= 100:
        raise InvalidCommand("a canary needs canary_percent between 1 and 100")
    if command.role is not Role.CANARY and command.canary_percent != 0:
        raise InvalidCommand(f"canary_percent applies to canaries only, not to a {command.role}")
    return target


def decide_deploy(model: Model, command: DeployModel, now: datetime) -> ev.ModelDeployed:
    """Returns the `ModelDeployed` event to append once the version is loaded and warm.

    Raises:
        UnknownVersion, InvalidTransition, InvalidCommand: As `check_deploy`.
    """
    target = check_deploy(model, command)
    event = ev.ModelDeployed(
        schema_version=ev.SCHEMA_VERSION,
        model_name=model.name,
        version=command.version,
        role=ev.ROLE_TO_PROTO[command.role],
        canary_percent=command.canary_percent,
        triton_model_name=triton_model_name(model.name, command.version),
        deployed_by=command.deployed_by,
        artifact_sha256=target.artifact_sha256,
    )
    event.deployed_at.FromDatetime(now)
    return event
