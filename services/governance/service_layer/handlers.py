"""Use cases that change the registry: register (+ validate), approve, deploy, promote, roll back.

Each command loads the model's events from its subject, lets the domain decide, and appends the decision's
first event with the subject's expected last sequence, so two racing writers (in this process or in another
governance instance) cannot both succeed: the loser gets `ConcurrentChange`. The decision's consequences
(ModelValidated after ModelRegistered, ModelRetired after a role changed hands) follow without the check:
they were decided with the first event, and their business ids dedupe retries. Triton models that leave
service are unloaded only after the events are appended. The registry projection is then caught up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import Message

from services.governance.domain import decisions
from services.governance.domain.commands import ApproveModel, DeployModel, PromoteModel, RegisterModel, RollbackModel
from services.governance.domain.errors import ConcurrentChange, DeploymentFailed, DuplicateVersion, GovernanceError
from services.governance.domain.model import Model, Stage, triton_model_name
from services.governance.domain.views import VersionView
from services.governance.service_layer import projection
from services.governance.service_layer.ports import (
    ArtifactStore,
    ArtifactValidator,
    DecisionLog,
    ModelEventLog,
    ModelServer,
    Registry,
)

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Governance:
    """Everything the use cases need, wired by the composition root (bootstrap)."""

    events: ModelEventLog
    registry: Registry
    artifacts: ArtifactStore
    model_server: ModelServer
    validate_artifacts: ArtifactValidator
    decisions: DecisionLog | None = None
    clock: Callable[[], datetime] = _utcnow
    _model_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    projection_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def model_lock(self, model_name: str) -> asyncio.Lock:
        """Serializes commands on one model inside this process (other processes are fenced by the append)."""
        return self._model_locks.setdefault(model_name, asyncio.Lock())


async def load_model(gov: Governance, model_name: str) -> Model:
    """The aggregate, folded from the model's subject.

    An event the log could not read comes as an ``EventQuarantined`` that only moves ``last_seq``: the next append
    expects the subject's last stored sequence, so a bad event does not look like another writer forever.
    """
    return Model.from_history(model_name, await gov.events.load(model_name))


async def _append_all(gov: Governance, model: Model, events: tuple[Message, ...], *, checked: bool = True) -> None:
    """Appends the decision's events in order: the first with the expected sequence (if ``checked``)."""
    for index, event in enumerate(events):
        expected = model.last_seq if checked and index == 0 else None
        try:
            seq = await gov.events.append(event, expected_last_seq=expected)
        except ConcurrentChange:
            raise ConcurrentChange(f"concurrent change to model {model.name}, retry") from None
        model.apply(event, seq)


async def _unload(gov: Governance, serving_names: tuple[str, ...]) -> None:
    # The events are appended: these versions are out of service whatever Triton says now.
    for name in serving_names:
        try:
            await gov.model_server.undeploy(name)
        except GovernanceError as exc:
            log.warning("%s left service but could not be unloaded: %s", name, exc)


async def register_model(gov: Governance, command: RegisterModel) -> VersionView:
    """Checks the artifacts, stores them content-addressed, appends `ModelRegistered` then `ModelValidated`.

    Registering a version that is registered but not validated (an earlier call stopped between its two
    appends) with the same ONNX bytes only appends the missing `ModelValidated`.

    Raises:
        InvalidArtifact: If the ONNX or explainer is corrupt or does not fit the features (nothing stored).
        DuplicateVersion, InvalidCommand, ConcurrentChange: From the domain and the append.
    """
    checks = await asyncio.to_thread(
        gov.validate_artifacts, command.onnx_model, command.explainer_model, command.feature_names
    )
    checks |= decisions.registration_checks(command)
    onnx_sha = hashlib.sha256(command.onnx_model).hexdigest()
    explainer_sha = hashlib.sha256(command.explainer_model).hexdigest() if command.explainer_model else ""
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        existing = model.versions.get(command.version)
        if existing is None:
            registered = decisions.decide_register(model, command, onnx_sha, explainer_sha, gov.clock())
            # Stored before the append: an artifact without an event is harmless (content-addressed), the
            # reverse would be a registered version nobody can deploy or explain.
            await asyncio.to_thread(gov.artifacts.put, command.onnx_model)
            if command.explainer_model:
                await asyncio.to_thread(gov.artifacts.put, command.explainer_model)
            await _append_all(gov, model, (registered,))
            validated = decisions.decide_validate(model, command.version, checks, gov.clock())
            await _append_all(gov, model, (validated,), checked=False)
        elif existing.stage is Stage.REGISTERED and existing.artifact_sha256 == onnx_sha:
            validated = decisions.decide_validate(model, command.version, checks, gov.clock())
            await _append_all(gov, model, (validated,))
        else:
            raise DuplicateVersion(f"model {model.name} version {command.version} is already registered")
    return await projection.view(gov, command.model_name, command.version)


async def approve_model(gov: Governance, command: ApproveModel) -> VersionView:
    """Records one approval (`ModelApproved`); the second distinct approver makes the version approved.

    Raises:
        UnknownVersion, InvalidTransition, ConcurrentChange: From the domain and the append.
    """
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        await _append_all(gov, model, (decisions.decide_approve(model, command, gov.clock()),))
    return await projection.view(gov, command.model_name, command.version)


async def deploy_model(gov: Governance, command: DeployModel) -> tuple[VersionView, float]:
    """Loads an approved version into the model server, warms it, then appends `ModelDeployed` (+ `ModelRetired`).

    The event is appended only once the model answered its warm-up inference. If loading, warming or the
    append fails, the registry is unchanged and the model is unloaded and removed from the repository,
    unless the model's subject shows that another instance deployed this same version meanwhile. The role's
    previous holder is unloaded after the events are appended.

    Returns:
        The version as deployed and the milliseconds from request to serving.

    Raises:
        UnknownVersion, InvalidTransition, InvalidCommand: If the version may not be deployed so.
        ServingUnavailable, DeploymentFailed: If the model server cannot load or run it.
        ConcurrentChange: If the model changed meanwhile (another instance); retry.
    """
    started = time.perf_counter()
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        target = decisions.check_deploy(model, command)
        serving_name = triton_model_name(model.name, command.version)
        await _load(gov, model, command.version, serving_name)
        try:
            outcome = decisions.decide_deploy(model, command, gov.clock())
            await _append_all(gov, model, outcome.events)
        except BaseException:
            await _undo_unless_serving(gov, command.model_name, command.version, serving_name)
            raise
        await _unload(gov, outcome.unload)
    load_ms = (time.perf_counter() - started) * 1000.0
    log.info("deployed %s as %s in %.0f ms", target.key, command.role, load_ms)
    return await projection.view(gov, command.model_name, command.version), load_ms


async def promote_model(gov: Governance, command: PromoteModel) -> VersionView:
    """Makes a deployed canary or shadow the champion: `ModelPromoted`, `ModelRetired` (old champion), unload.

    Raises:
        UnknownVersion, InvalidTransition: If the version is not a deployed canary or shadow.
        ConcurrentChange: If another writer changed the model meanwhile (a racing promotion); retry.
    """
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        outcome = decisions.decide_promote(model, command, gov.clock())
        await _append_all(gov, model, outcome.events)
        await _unload(gov, outcome.unload)
    log.info("promoted %s@%s to champion", command.model_name, command.version)
    return await projection.view(gov, command.model_name, command.version)


async def rollback_model(gov: Governance, command: RollbackModel) -> VersionView:
    """Restores the previous champion: reload + warm it, `ModelRolledBack`, `ModelRetired` (current), unload.

    Returns:
        The restored champion.

    Raises:
        InvalidTransition: If there is no champion, or none before it.
        ServingUnavailable, DeploymentFailed: If Triton cannot reload the previous champion (nothing appended).
        ConcurrentChange: If another writer changed the model meanwhile; retry.
    """
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        _, previous = decisions.check_rollback(model)
        serving_name = previous.triton_model_name or triton_model_name(model.name, previous.version)
        await _load(gov, model, previous.version, serving_name)
        try:
            outcome = decisions.decide_rollback(model, command, gov.clock())
            await _append_all(gov, model, outcome.events)
        except BaseException:
            await _undo_unless_serving(gov, command.model_name, previous.version, serving_name)
            raise
        await _unload(gov, outcome.unload)
    log.info("rolled %s back to %s", command.model_name, previous.version)
    return await projection.view(gov, command.model_name, previous.version)


async def _load(gov: Governance, model: Model, version: str, serving_name: str) -> None:
    target = model.get(version)
    try:
        onnx_model = await asyncio.to_thread(gov.artifacts.get, target.artifact_sha256)
    except (GovernanceError, OSError, ValueError) as exc:
        raise DeploymentFailed(f"artifact of {target.key} is unusable: {exc}") from None
    try:
        await gov.model_server.deploy(serving_name, onnx_model, len(target.feature_names))
    except BaseException:
        await _undo_unless_serving(gov, model.name, version, serving_name)
        raise


async def _undo_unless_serving(gov: Governance, model_name: str, version: str, serving_name: str) -> None:
    # Another instance may serve this same version meanwhile (same Triton name): keep its model.
    try:
        serving = (await load_model(gov, model_name)).get(version).stage is Stage.DEPLOYED
    except Exception:  # the event log is unreachable too: unload, the registry does not list it as serving
        serving = False
    if not serving:
        await gov.model_server.undeploy(serving_name)


async def reconcile_serving(gov: Governance) -> list[str]:
    """Reload every version the registry says is serving but Triton does not have ready.

    Triton in explicit model-control mode starts empty after a restart; this puts the deployed versions
    back (write if missing, load, warm) without new events: the record already says they serve.

    Returns:
        The Triton names reloaded now.
    """
    reloaded = []
    for model_name in sorted({view.model_name for view in gov.registry.serving()}):
        async with gov.model_lock(model_name):  # not while a command of this model changes what serves
            await projection.catch_up(gov)
            for view in gov.registry.serving():
                name = view.triton_model_name
                if view.model_name != model_name or not name or await gov.model_server.is_serving(name):
                    continue
                try:
                    onnx_model = await asyncio.to_thread(gov.artifacts.get, view.artifact_sha256)
                    await gov.model_server.deploy(name, onnx_model, len(view.feature_names))
                except (GovernanceError, OSError, ValueError) as exc:
                    log.warning("could not reload %s into the model server: %s", name, exc)
                    continue
                log.info("reloaded %s (%s %s) into the model server", name, view.model_name, view.version)
                reloaded.append(name)
    return reloaded


HANDLERS = {
    RegisterModel: register_model,
    ApproveModel: approve_model,
    DeployModel: deploy_model,
    PromoteModel: promote_model,
    RollbackModel: rollback_model,
}
