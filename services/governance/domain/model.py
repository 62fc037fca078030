"""The model aggregate: every version of one model, rebuilt from the events on the model's subject.

Stages of a version: registered -> validated -> approved -> deployed (champion, canary or shadow) -> retired.
One version per role and model. The champion's succession is kept as a stack (deploy as champion and
promote push, rollback pops), so a rollback restores the champion before the current one. `Model.apply`
folds an appended event into the state; the decisions live in `decisions.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from google.protobuf.message import Message

from services.governance.domain import events as ev
from services.governance.domain.commands import Role
from services.governance.domain.errors import UnknownVersion

# Four eyes: distinct approvers, neither of them the registrant, move a validated version to approved.
REQUIRED_APPROVALS = 2


class Stage(StrEnum):
    """Where a version is in its lifecycle."""

    REGISTERED = "registered"
    VALIDATED = "validated"
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
    registered_by: str = ""
    explainer_artifact_sha256: str = ""
    stage: Stage = Stage.REGISTERED
    approvals: list[Approval] = field(default_factory=list)
    role: Role | None = None
    canary_percent: int = 0
    triton_model_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.model_name}@{self.version}"

    def retire(self) -> None:
        """Leaves service (no role)."""
        self.stage, self.role, self.canary_percent = Stage.RETIRED, None, 0

    def serve(self, role: Role, canary_percent: int = 0) -> None:
        """Serves in ``role``."""
        self.stage, self.role, self.canary_percent = Stage.DEPLOYED, role, canary_percent


@dataclass
class Model:
    """All versions of one model, the champion succession, and the last stream sequence read from its subject."""

    name: str
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    champions: list[str] = field(default_factory=list)
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

    def previous_champion(self) -> ModelVersion | None:
        """The champion before the current one (what a rollback restores), if any."""
        return self.versions.get(self.champions[-2]) if len(self.champions) >= 2 else None

    def apply(self, event: Message, seq: int) -> None:
        """Folds one appended event into the state (events are facts: no validation here)."""
        if isinstance(event, ev.ModelRegistered):
            self.versions[event.version] = ModelVersion(
                event.model_name,
                event.version,
                event.artifact_sha256,
                tuple(event.feature_names),
                registered_by=event.registered_by,
                explainer_artifact_sha256=event.explainer_artifact_sha256,
            )
        elif isinstance(event, ev.ModelValidated):
            self._apply_validated(event)
        elif isinstance(event, ev.ModelApproved):
            self._apply_approved(event)
        elif isinstance(event, ev.ModelDeployed):
            self._apply_deployed(event)
        elif isinstance(event, ev.ModelPromoted):
            self._crown(event.version)
        elif isinstance(event, ev.ModelRolledBack):
            if self.champions and self.champions[-1] == event.from_version:
                self.champions.pop()
            self._crown(event.to_version)
        elif isinstance(event, ev.ModelRetired) and event.version in self.versions:
            self.versions[event.version].retire()
        self.last_seq = seq

    def _apply_validated(self, event: ev.ModelValidated) -> None:
        target = self.versions[event.version]
        if target.stage is Stage.REGISTERED:
            target.stage = Stage.VALIDATED

    def _apply_approved(self, event: ev.ModelApproved) -> None:
        target = self.versions[event.version]
        target.approvals.append(Approval(event.approver, event.comment, event.approved_at.ToDatetime(UTC)))
        if target.stage is Stage.VALIDATED and len({a.approver for a in target.approvals}) >= REQUIRED_APPROVALS:
            target.stage = Stage.APPROVED

    def _apply_deployed(self, event: ev.ModelDeployed) -> None:
        role = ev.role_from_proto(event.role)
        target = self.versions[event.version]
        target.triton_model_name = event.triton_model_name
        if role is Role.CHAMPION:
            self._crown(event.version)
            return
        displaced = self.serving(role)
        if displaced is not None and displaced.version != event.version:
            displaced.retire()  # ModelRetired follows; the role is taken at this event already
        target.serve(role, event.canary_percent)

    def _crown(self, version: str) -> None:
        # The old champion leaves the role at this event (its ModelRetired follows right after).
        current = self.serving(Role.CHAMPION)
        if current is not None and current.version != version:
            current.retire()
        self.versions[version].serve(Role.CHAMPION)
        if not self.champions or self.champions[-1] != version:
            self.champions.append(version)


def triton_model_name(model_name: str, version: str) -> str:
    """Name of a version in Triton's repository: ``<name>-<major>-<minor>-<patch>`` (unique, path-safe)."""
    return f"{model_name}-{version.replace('.', '-')}"
