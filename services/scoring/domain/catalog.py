"""Which model versions serve in which role, folded from the MODELS stream.

Roles: one champion (decides), an optional canary (decides for a deterministic hash share of cards) and an
optional shadow (scores mirrored traffic off the hot path, never decides). The fold follows the event
meanings in proto/fraud/events/v1/model_events.proto; unknown event kinds are ignored (the stream grows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as model_events

CHAMPION = model_events.DEPLOYMENT_ROLE_CHAMPION
CANARY = model_events.DEPLOYMENT_ROLE_CANARY
SHADOW = model_events.DEPLOYMENT_ROLE_SHADOW


@dataclass(frozen=True)
class ServingModel:
    """Everything scoring needs to run, explain and record one version."""

    name: str
    version: str
    artifact_sha256: str
    triton_model_name: str
    thresholds: common.Thresholds
    feature_set_version: str
    feature_names: tuple[str, ...]
    explainer_sha256: str = ""
    canary_percent: int = 0

    def ref(self) -> common.ModelRef:
        return common.ModelRef(name=self.name, version=self.version, artifact_sha256=self.artifact_sha256)


@dataclass
class ModelCatalog:
    """Registered versions and the version serving in each role; a pure fold of model events."""

    registered: dict[tuple[str, str], model_events.ModelRegistered] = field(default_factory=dict)
    triton_names: dict[tuple[str, str], str] = field(default_factory=dict)
    roles: dict[int, ServingModel] = field(default_factory=dict)
    applied: int = 0

    @property
    def champion(self) -> ServingModel | None:
        return self.roles.get(CHAMPION)

    @property
    def canary(self) -> ServingModel | None:
        return self.roles.get(CANARY)

    @property
    def shadow(self) -> ServingModel | None:
        return self.roles.get(SHADOW)

    def apply(self, event: object) -> None:
        """Fold one model event."""
        self.applied += 1
        if isinstance(event, model_events.ModelRegistered):
            self.registered[(event.model_name, event.version)] = event
        elif isinstance(event, model_events.ModelDeployed):
            key = (event.model_name, event.version)
            self.triton_names[key] = event.triton_model_name or triton_model_name(*key)
            self._assign(event.role, key, event.canary_percent)
        elif isinstance(event, model_events.ModelPromoted):
            self._assign(CHAMPION, (event.model_name, event.version), 0)
        elif isinstance(event, model_events.ModelRolledBack):
            self._assign(CHAMPION, (event.model_name, event.to_version), 0)
        elif isinstance(event, model_events.ModelRetired):
            for role, model in list(self.roles.items()):
                if (model.name, model.version) == (event.model_name, event.version):
                    del self.roles[role]

    def _assign(self, role: int, key: tuple[str, str], canary_percent: int) -> None:
        serving = self._serving(key, canary_percent)
        if serving is None:
            return
        for other_role, model in list(self.roles.items()):  # a version serves in one role at a time
            if (model.name, model.version) == key and other_role != role:
                del self.roles[other_role]
        self.roles[role] = serving

    def _serving(self, key: tuple[str, str], canary_percent: int) -> ServingModel | None:
        registered = self.registered.get(key)
        if registered is None:
            return None
        return ServingModel(
            name=key[0],
            version=key[1],
            artifact_sha256=registered.artifact_sha256,
            triton_model_name=self.triton_names.get(key) or triton_model_name(*key),
            thresholds=registered.thresholds,
            feature_set_version=registered.feature_set_version,
            feature_names=tuple(registered.feature_names),
            explainer_sha256=registered.explainer_artifact_sha256,
            canary_percent=canary_percent,
        )

    def serving(self) -> list[ServingModel]:
        return list(self.roles.values())


def triton_model_name(name: str, version: str) -> str:
    """Triton repository name of a registered version (the convention governance deploys with)."""
    return f"{name}-{version.replace('.', '-')}"
