"""Scoring is ready when every deciding model answers on its top rung (fakes of the runner and local copies)."""

from __future__ import annotations

from collections.abc import Sequence

from fraud.events.v1 import model_events_pb2 as model_events
from services.scoring.domain.catalog import ModelCatalog
from services.scoring.service_layer.handlers import ScoringDeps
from services.scoring.service_layer.ports import InferenceError
from services.scoring.service_layer.readiness import why_not_ready
from tests.unit.test_scoring import THRESHOLDS, FakeLocal, FakePredictions, champion_catalog


class ModelsRunner:
    """Triton with some models loaded: names -> score; any other name fails as Triton does."""

    def __init__(self, loaded: dict[str, float], live: bool = True) -> None:
        self.loaded = loaded
        self.is_live = live
        self.probed: list[tuple[str, int]] = []

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        self.probed.append((triton_model_name, len(values)))
        if not self.is_live:
            raise InferenceError(f"{triton_model_name}: [UNAVAILABLE] failed to connect")
        if triton_model_name not in self.loaded:
            raise InferenceError(f"{triton_model_name}: [UNAVAILABLE] Request for unknown model")
        return self.loaded[triton_model_name]

    async def live(self, timeout: float) -> bool:
        return self.is_live


def deps(runner: ModelsRunner, catalog: ModelCatalog | None = None, local: FakeLocal | None = None) -> ScoringDeps:
    return ScoringDeps(
        catalog=champion_catalog() if catalog is None else catalog,
        runner=runner,
        predictions=FakePredictions(),
        local=local,
    )


def with_role(catalog: ModelCatalog, version: str, role: int, percent: int = 0) -> ModelCatalog:
    catalog.apply(
        model_events.ModelRegistered(model_name="gbdt", version=version, artifact_sha256="ef" * 32,
                                     feature_set_version="card-v1", thresholds=THRESHOLDS, feature_names=["amount"])
    )  # fmt: skip
    catalog.apply(model_events.ModelDeployed(model_name="gbdt", version=version, role=role, canary_percent=percent))
    return catalog


async def test_with_no_model_deployed_there_is_nothing_to_load() -> None:
    assert await why_not_ready(deps(ModelsRunner({}), ModelCatalog())) is None


async def test_ready_once_the_champion_answers_a_probe_in_triton() -> None:
    runner = ModelsRunner({"gbdt-1-0-0": 0.02})
    assert await why_not_ready(deps(runner)) is None
    assert runner.probed == [("gbdt-1-0-0", 1)]  # one value per feature of the registered model


async def test_triton_up_without_the_champion_is_not_ready_even_with_a_local_copy() -> None:
    # A restarted Triton starts empty: decisions would leave Triton until governance reloads the model.
    why = await why_not_ready(deps(ModelsRunner({}), local=FakeLocal(score=0.1)))
    assert why is not None and "gbdt 1.0.0 does not answer in Triton" in why and "unknown model" in why


async def test_triton_answering_garbage_is_not_ready() -> None:
    why = await why_not_ready(deps(ModelsRunner({"gbdt-1-0-0": float("nan")})))
    assert why is not None and "invalid score nan" in why


async def test_triton_down_is_ready_on_the_in_process_copy_and_not_without_one() -> None:
    down = ModelsRunner({"gbdt-1-0-0": 0.02}, live=False)
    assert await why_not_ready(deps(down, local=FakeLocal(score=0.1))) is None
    why = await why_not_ready(deps(down, local=FakeLocal(score=None)))
    assert why is not None and "no in-process copy of gbdt 1.0.0" in why
    assert await why_not_ready(deps(down)) is not None


async def test_the_canary_must_answer_too_but_the_shadow_may_lag() -> None:
    canary = with_role(champion_catalog(), "2.0.0", model_events.DEPLOYMENT_ROLE_CANARY, 10)
    why = await why_not_ready(deps(ModelsRunner({"gbdt-1-0-0": 0.02}), canary))
    assert why is not None and "gbdt 2.0.0" in why
    shadow = with_role(champion_catalog(), "2.0.0", model_events.DEPLOYMENT_ROLE_SHADOW)
    assert await why_not_ready(deps(ModelsRunner({"gbdt-1-0-0": 0.02}), shadow)) is None


async def test_each_check_asks_again_for_the_local_copy_of_every_serving_model() -> None:
    local = FakeLocal(score=0.1)
    catalog = with_role(champion_catalog(), "2.0.0", model_events.DEPLOYMENT_ROLE_SHADOW)
    ready = deps(ModelsRunner({"gbdt-1-0-0": 0.02}), catalog, local)
    await why_not_ready(ready)
    await why_not_ready(ready)
    assert sorted(local.prepared) == ["1.0.0", "1.0.0", "2.0.0", "2.0.0"]  # a failed fetch gets retried
