"""Decisions: pure functions from the aggregate and a command to the events to append, or an error saying why not.

A decision that changes who serves also names the Triton models that leave service with it (`Outcome.unload`):
the use case unloads them only after the events are appended.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message

from services.governance.domain import events as ev
from services.governance.domain.commands import (
    ApproveModel,
    DeployModel,
    PromoteModel,
    RegisterModel,
    Role,
    RollbackModel,
)
from services.governance.domain.errors import DuplicateVersion, InvalidCommand, InvalidTransition
from services.governance.domain.model import REQUIRED_APPROVALS, Model, ModelVersion, Stage, triton_model_name

_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# Training writes a threshold "just above 1.0" (the next float32) when a precision target is unreachable: it
# never fires. Anything further above 1 is a mistake.
NEVER_FIRES_LIMIT = 1.0 + 1e-6


@dataclass(frozen=True)
class Outcome:
    """Events to append, in order, and the Triton models that leave service once they are appended."""

    events: tuple[Message, ...]
    unload: tuple[str, ...] = ()


def registration_checks(command: RegisterModel) -> dict[str, str]:
    """The domain's checks of a registration, as ``check name -> detail`` for `ModelValidated`.

    Raises:
        InvalidCommand: If the version is not semantic, thresholds are not sane or feature names repeat.
    """
    if not _SEMVER.match(command.version):
        raise InvalidCommand(f"version {command.version!r} is not MAJOR.MINOR.PATCH")
    review, decline = command.review_threshold, command.decline_threshold
    if not (math.isfinite(review) and math.isfinite(decline) and 0.0 <= review <= decline <= NEVER_FIRES_LIMIT):
        raise InvalidCommand(f"thresholds must satisfy 0 <= review ({review}) <= decline ({decline}) <= 1")
    if len(set(command.feature_names)) != len(command.feature_names) or not all(command.feature_names):
        raise InvalidCommand("feature names must be non-empty and distinct")
    return {
        "thresholds": f"0 <= review {review:g} <= decline {decline:g} <= 1",
        "feature_names": f"{len(command.feature_names)} distinct names",
    }


def decide_register(
    model: Model, command: RegisterModel, artifact_sha256: str, explainer_sha256: str, now: datetime
) -> ev.ModelRegistered:
    """Checks a registration and returns the `ModelRegistered` event to append.

    Raises:
        DuplicateVersion: If the version is already registered.
        InvalidCommand: As `registration_checks`, or the command names another model.
    """
    if command.model_name != model.name:
        raise InvalidCommand(f"command for model {command.model_name} given to aggregate {model.name}")
    if command.version in model.versions:
        raise DuplicateVersion(f"model {model.name} version {command.version} is already registered")
    registration_checks(command)
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
        explainer_artifact_sha256=explainer_sha256,
        data_split=dict(command.data_split),
    )
    event.thresholds.review, event.thresholds.decline = command.review_threshold, command.decline_threshold
    if command.reference_profile is not None:
        event.reference_profile.CopyFrom(command.reference_profile)
    event.registered_at.FromDatetime(now)
    return event


def decide_validate(model: Model, version: str, checks: Mapping[str, str], now: datetime) -> ev.ModelValidated:
    """Returns the `ModelValidated` event for a registered version whose checks all passed.

    Raises:
        UnknownVersion: If the version is not registered.
        InvalidTransition: If it is past the registered stage.
    """
    target = model.get(version)
    if target.stage is not Stage.REGISTERED:
        raise InvalidTransition(f"{target.key} is {target.stage}; only a registered version can be validated")
    event = ev.ModelValidated(
        schema_version=ev.SCHEMA_VERSION, model_name=model.name, version=version, checks=dict(checks)
    )
    event.validated_at.FromDatetime(now)
    return event


def decide_approve(model: Model, command: ApproveModel, now: datetime) -> ev.ModelApproved:
    """Checks an approval (four eyes) and returns the `ModelApproved` event to append.

    ``command.approver`` is the authenticated caller's principal id (the service layer's argument, never a
    request field). The registrant may not approve; a principal approving again is refused, so two approvals
    always come from two distinct principals.

    Raises:
        UnknownVersion: If the version is not registered.
        InvalidTransition: If the approver registered the version or already signed, or the version is not
            validated (unvalidated, already approved by enough people, deployed or retired).
    """
    target = model.get(command.version)
    if command.approver == target.registered_by:
        raise InvalidTransition(f"four eyes: {command.approver} registered {target.key} and cannot approve it")
    if any(a.approver == command.approver for a in target.approvals):
        raise InvalidTransition(
            f"{command.approver} has already approved {target.key}; one principal's approval counts once"
        )
    if target.stage is Stage.REGISTERED:
        raise InvalidTransition(f"{target.key} is not validated yet; only a validated version can be approved")
    if target.stage is not Stage.VALIDATED:
        signers = ", ".join(a.approver for a in target.approvals) or "nobody"
        raise InvalidTransition(
            f"{target.key} is {target.stage} (approved by {signers}); only a validated version takes approvals"
        )
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
        InvalidTransition: If the version is not approved (deployed and retired ones are refused too), or a
            canary or shadow is asked for while no champion serves.
        InvalidCommand: If ``canary_percent`` does not fit the role.
    """
    target = model.get(command.version)
    if target.stage is not Stage.APPROVED:
        needs = (
            f" (needs {REQUIRED_APPROVALS} approvals)" if target.stage in (Stage.REGISTERED, Stage.VALIDATED) else ""
        )
        raise InvalidTransition(f"{target.key} is {target.stage}; only an approved version can be deployed{needs}")
    if command.role is Role.CANARY and not 1 <= command.canary_percent <= 100:
        raise InvalidCommand("a canary needs canary_percent between 1 and 100")
    if command.role is not Role.CANARY and command.canary_percent != 0:
        raise InvalidCommand(f"canary_percent applies to canaries only, not to a {command.role}")
    if command.role is not Role.CHAMPION and model.serving(Role.CHAMPION) is None:
        raise InvalidTransition(f"model {model.name} has no champion; deploy a champion before a {command.role}")
    return target


def decide_deploy(model: Model, command: DeployModel, now: datetime) -> Outcome:
    """`ModelDeployed` once the version is loaded and warm, then `ModelRetired` for the role's previous holder.

    Raises:
        UnknownVersion, InvalidTransition, InvalidCommand: As `check_deploy`.
    """
    target = check_deploy(model, command)
    deployed = ev.ModelDeployed(
        schema_version=ev.SCHEMA_VERSION,
        model_name=model.name,
        version=command.version,
        role=ev.ROLE_TO_PROTO[command.role],
        canary_percent=command.canary_percent,
        triton_model_name=triton_model_name(model.name, command.version),
        deployed_by=command.deployed_by,
        artifact_sha256=target.artifact_sha256,
    )
    deployed.deployed_at.FromDatetime(now)
    displaced = model.serving(command.role)
    if displaced is None:
        return Outcome((deployed,))
    reason = f"replaced by {command.version} as {command.role}"
    return Outcome((deployed, _retired(displaced, command.deployed_by, reason, now)), (_serving_name(displaced),))


def decide_promote(model: Model, command: PromoteModel, now: datetime) -> Outcome:
    """`ModelPromoted` for a deployed canary or shadow, then `ModelRetired` for the old champion.

    Raises:
        UnknownVersion: If the version is not registered.
        InvalidTransition: If it is not a deployed canary or shadow (the champion itself included).
    """
    target = model.get(command.version)
    if target.stage is not Stage.DEPLOYED or target.role not in (Role.CANARY, Role.SHADOW):
        where = "already the champion" if target.role is Role.CHAMPION else f"{target.stage}"
        raise InvalidTransition(f"{target.key} is {where}; only a deployed canary or shadow can be promoted")
    champion = model.serving(Role.CHAMPION)
    promoted = ev.ModelPromoted(
        schema_version=ev.SCHEMA_VERSION,
        model_name=model.name,
        version=command.version,
        previous_version=champion.version if champion else "",
        promoted_by=command.promoted_by,
        reason=command.reason,
    )
    promoted.promoted_at.FromDatetime(now)
    if champion is None:
        return Outcome((promoted,))
    retired = _retired(champion, command.promoted_by, f"replaced by {command.version} as champion", now)
    return Outcome((promoted, retired), (_serving_name(champion),))


def check_rollback(model: Model) -> tuple[ModelVersion, ModelVersion]:
    """The current champion and the one a rollback restores.

    Raises:
        InvalidTransition: If no champion serves, or none served before it.
    """
    current = model.serving(Role.CHAMPION)
    if current is None:
        raise InvalidTransition(f"model {model.name} has no champion to roll back")
    previous = model.previous_champion()
    if previous is None:
        raise InvalidTransition(
            f"{current.key} is the first champion of {model.name}; there is nothing to roll back to"
        )
    return current, previous


def decide_rollback(model: Model, command: RollbackModel, now: datetime) -> Outcome:
    """`ModelRolledBack` (previous champion restored), then `ModelRetired` for the rolled-back version.

    Raises:
        InvalidTransition: As `check_rollback`.
    """
    current, previous = check_rollback(model)
    rolled_back = ev.ModelRolledBack(
        schema_version=ev.SCHEMA_VERSION,
        model_name=model.name,
        from_version=current.version,
        to_version=previous.version,
        rolled_back_by=command.rolled_back_by,
        reason=command.reason,
    )
    rolled_back.rolled_back_at.FromDatetime(now)
    retired = _retired(current, command.rolled_back_by, f"rolled back to {previous.version}", now)
    return Outcome((rolled_back, retired), (_serving_name(current),))


def _retired(version: ModelVersion, by: str, reason: str, now: datetime) -> ev.ModelRetired:
    event = ev.ModelRetired(
        schema_version=ev.SCHEMA_VERSION,
        model_name=version.model_name,
        version=version.version,
        retired_by=by,
        reason=reason,
    )
    event.retired_at.FromDatetime(now)
    return event


def _serving_name(version: ModelVersion) -> str:
    return version.triton_model_name or triton_model_name(version.model_name, version.version)
