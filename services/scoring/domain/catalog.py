"""Which model versions serve, folded from the MODELS stream (ModelRegistered, ModelDeployed, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as model_events


@dataclass(frozen=True)
class ServingModel:
    """Everything scoring needs to run and record one version."""

    name: str
    version: str
    artifact_sha256: str
    triton_model_name: str
    thresholds: common.Thresholds
    feature_set_version: str
    feature_names: tuple[str, ...]

    def ref(self) -> common.ModelRef:
        return common.ModelRef(name=self.name, version=self.version, artifact_sha256=self.artifact_sha256)


@dataclass
class ModelCatalog:
    """Registered versions and the current champion per feature set; a pure fold of model events."""

    registered: dict[tuple[str, str], model_events.ModelRegistered] = field(default_factory=dict)
    champion: ServingModel | None = None
    applied: int = 0

    def apply(self, event: object) -> None:
        """Fold one model event (unknown kinds are ignored: the stream will grow new ones)."""
        self.applied += 1
        if isinstance(event, model_events.ModelRegistered):
            self.registered[(event.model_name, event.version)] = event
        elif isinstance(event, model_events.ModelDeployed):
            if event.role == model_events.DEPLOYMENT_ROLE_CHAMPION:
                self.champion = self._serving(event.model_name, event.version, event.triton_model_name)
        elif isinstance(event, model_events.ModelRolledBack):
            current = self.champion
            if current is not None and current.name == event.model_name and current.version == event.from_version:
                self.champion = self._serving(event.model_name, event.to_version, None)

    def _serving(self, name: str, version: str, triton_name: str | None) -> ServingModel | None:
        registered = self.registered.get((name, version))
        if registered is None:
            return None
        return ServingModel(
            name=name,
            version=version,
            artifact_sha256=registered.artifact_sha256,
            triton_model_name=triton_name or triton_model_name(name, version),
            thresholds=registered.thresholds,
            feature_set_version=registered.feature_set_version,
            feature_names=tuple(registered.feature_names),
        )


def triton_model_name(name: str, version: str) -> str:
    """Triton repository name of a registered version (the convention governance deploys with)."""
    return f"{name}-{version.replace('.', '-')}"
