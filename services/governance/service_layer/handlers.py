"""Use cases: register, approve, deploy, list, serving.

Each command loads the model's events from its subject, lets the domain decide, and appends the resulting
event with the subject's expected last sequence, so two racing writers (in this process or in another
governance instance) cannot both succeed: the loser gets `ConcurrentChange`. The registry projection is
then caught up from the stream, which also brings in events written by other instances.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.governance.domain import model as domain
from services.governance.domain.commands import ApproveModel, DeployModel, RegisterModel
from services.governance.domain.errors import ConcurrentChange, DeploymentFailed, UnknownVersion
from services.governance.domain.model import Model, Stage
from services.governance.domain.views import VersionView
from services.governance.service_layer.ports import ArtifactStore, ModelEventLog, ModelServer, Registry

log = logging.getLogger(__name__)
OnnxChecker = Callable[[bytes, tuple[str, ...]], Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Governance:
    """Everything the use cases need, wired by the composition root (bootstrap)."""

    events: ModelEventLog
    registry: Registry
    artifacts: ArtifactStore
    model_server: ModelServer
    check_onnx: OnnxChecker
    clock: Callable[[], datetime] = _utcnow
    _model_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _projection_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def model_lock(self, model_name: str) -> asyncio.Lock:
        """Serializes commands on one model inside this process (other processes are fenced by the append)."""
        return self._model_locks.setdefault(model_name, asyncio.Lock())


async def load_model(gov: Governance, model_name: str) -> Model:
    """The aggregate, folded from the model's subject."""
    return Model.from_history(model_name, await gov.events.load(model_name))


async def catch_up(gov: Governance) -> int:
    """Applies every stream event after the projection's position; returns the new position."""
    async with gov._projection_lock:
        position = await asyncio.to_thread(gov.registry.position)
        if await gov.events.last_seq() <= position:
            return position
        async for event, seq in gov.events.read_all(position):
            await asyncio.to_thread(gov.registry.apply, event, seq)
            position = max(position, seq)
        return position


async def rebuild(gov: Governance) -> int:
    """Drops the projection and re-applies the whole stream; returns the number of events applied."""
    async with gov._projection_lock:
        history = [pair async for pair in gov.events.read_all(0)]
        return await asyncio.to_thread(gov.registry.rebuild, history)


async def _view(gov: Governance, model_name: str, version: str) -> VersionView:
    await catch_up(gov)
    found = await asyncio.to_thread(gov.registry.get, model_name, version)
    if found is None:
        raise UnknownVersion(f"model {model_name} has no version {version}")
    return found


async def _append(gov: Governance, model: Model, event: Any) -> int:
    try:
        return await gov.events.append(event, expected_last_seq=model.last_seq)
    except ConcurrentChange:
        raise ConcurrentChange(f"concurrent change to model {model.name}, retry") from None


async def register_model(gov: Governance, command: RegisterModel) -> VersionView:
    """Validates the ONNX artifact, stores it content-addressed and appends `ModelRegistered`.

    Raises:
        InvalidArtifact: If the ONNX is corrupt or does not take the declared features (nothing is stored).
        DuplicateVersion, InvalidCommand, ConcurrentChange: From the domain and the append.
    """
    await asyncio.to_thread(gov.check_onnx, command.onnx_model, command.feature_names)
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        event = domain.decide_register(model, command, hashlib.sha256(command.onnx_model).hexdigest(), gov.clock())
        # Stored before the append: an artifact without an event is harmless (content-addressed), the
        # reverse would be a registered version nobody can deploy.
        await asyncio.to_thread(gov.artifacts.put, command.onnx_model)
        await _append(gov, model, event)
    return await _view(gov, command.model_name, command.version)


async def approve_model(gov: Governance, command: ApproveModel) -> VersionView:
    """Records one approval (`ModelApproved`).

    Raises:
        UnknownVersion, InvalidTransition, ConcurrentChange: From the domain and the append.
    """
    async with gov.model_lock(command.model_name):
        model = await load_model(gov, command.model_name)
        event = domain.decide_approve(model, command, gov.clock())
        await _append(gov, model, event)
    return await _view(gov, command.model_name, command.version)


async def deploy_model(gov: Governance, command: DeployModel) -> tuple[VersionView, float]:
    """Loads an approved version into the model server, warms it, then appends `ModelDeployed`.

    The event is appended only once the model answered its warm-up inference. If loading, warming or the
    append fails, the registry is unchanged and the model is unloaded and removed from the repository,
    unless the model's subject shows that another instance deployed this same version meanwhile.

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
        target = domain.check_deploy(model, command)
        serving_name = domain.triton_model_name(model.name, command.version)
        try:
            onnx_model = await asyncio.to_thread(gov.artifacts.get, target.artifact_sha256)
        except (OSError, ValueError) as exc:
            raise DeploymentFailed(f"artifact of {target.key} is unusable: {exc}") from None
        try:
            await gov.model_server.deploy(serving_name, onnx_model, len(target.feature_names))
            await _append(gov, model, domain.decide_deploy(model, command, gov.clock()))
        except BaseException:
            await _undo_unless_deployed(gov, command, serving_name)
            raise
    load_ms = (time.perf_counter() - started) * 1000.0
    log.info("deployed %s as %s in %.0f ms", target.key, command.role, load_ms)
    return await _view(gov, command.model_name, command.version), load_ms


async def _undo_unless_deployed(gov: Governance, command: DeployModel, serving_name: str) -> None:
    # Another instance may have deployed this same version meanwhile (same Triton name): keep its model.
    try:
        deployed = (await load_model(gov, command.model_name)).get(command.version).stage is Stage.DEPLOYED
    except Exception:  # the event log is unreachable too: unload, the registry does not list it as serving
        deployed = False
    if not deployed:
        await gov.model_server.undeploy(serving_name)


async def list_models(gov: Governance, model_name: str = "") -> list[VersionView]:
    """Registered versions (of one model when ``model_name`` is set), oldest first."""
    await catch_up(gov)
    return await asyncio.to_thread(gov.registry.list_versions, model_name or None)


async def get_serving_models(gov: Governance) -> list[VersionView]:
    """Deployed versions with their roles: what scoring should use now."""
    await catch_up(gov)
    return await asyncio.to_thread(gov.registry.serving)


HANDLERS = {RegisterModel: register_model, ApproveModel: approve_model, DeployModel: deploy_model}
