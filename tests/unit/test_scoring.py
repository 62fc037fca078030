"""Scoring: thresholds, catalog fold, safe mode, idempotent PredictionMade (fakes of our own ports)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from services.scoring.domain.catalog import ModelCatalog, triton_model_name
from services.scoring.domain.decision import decide
from services.scoring.service_layer.handlers import ScoringDeps, score_features
from services.scoring.service_layer.ports import InferenceError

THRESHOLDS = common.Thresholds(review=0.3, decline=0.8)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, common.DECISION_APPROVE), (0.29, common.DECISION_APPROVE), (0.3, common.DECISION_REVIEW),
     (0.79, common.DECISION_REVIEW), (0.8, common.DECISION_DECLINE), (1.0, common.DECISION_DECLINE)],
)  # fmt: skip
def test_thresholds_map_scores_to_decisions(score: float, expected: int) -> None:
    assert decide(score, THRESHOLDS) == expected


def champion_catalog() -> ModelCatalog:
    catalog = ModelCatalog()
    catalog.apply(
        model_events.ModelRegistered(
            model_name="gbdt", version="1.0.0", artifact_sha256="ab" * 32, feature_set_version="card-v1",
            thresholds=THRESHOLDS, feature_names=["amount"],
        )
    )  # fmt: skip
    catalog.apply(
        model_events.ModelDeployed(
            model_name="gbdt", version="1.0.0", role=model_events.DEPLOYMENT_ROLE_CHAMPION,
            triton_model_name=triton_model_name("gbdt", "1.0.0"),
        )
    )  # fmt: skip
    return catalog


def test_catalog_folds_registration_and_champion_deployment() -> None:
    champion = champion_catalog().champion
    assert champion is not None and champion.version == "1.0.0" and champion.triton_model_name == "gbdt-1-0-0"
    assert champion.thresholds.decline == pytest.approx(0.8)


class FakeRunner:
    def __init__(self, score: float | Exception) -> None:
        self.result = score

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class FakePredictions:
    def __init__(self) -> None:
        self.recorded: dict[str, events.PredictionMade] = {}

    async def append_prediction(self, event: events.PredictionMade) -> events.PredictionMade | None:
        if event.transaction_id in self.recorded:
            return self.recorded[event.transaction_id]
        self.recorded[event.transaction_id] = event
        return None


def req(tx: str = "tx-1") -> scoring.ScoreFeaturesRequest:
    return scoring.ScoreFeaturesRequest(
        transaction_id=tx, card_token="ct_x", feature_set_version="card-v1", values=[1.0, 0.5]
    )


async def test_champion_score_decides_and_is_recorded_with_its_inputs() -> None:
    log = FakePredictions()
    deps = ScoringDeps(catalog=champion_catalog(), runner=FakeRunner(0.9), predictions=log)
    response = await score_features(req(), deps)
    assert response.decision == common.DECISION_DECLINE and response.scoring_path == common.SCORING_PATH_TRITON
    assert response.reason_codes[0].code == "MODEL_SCORE_AT_DECLINE_THRESHOLD"
    recorded = log.recorded["tx-1"]
    assert recorded.model.version == "1.0.0" and list(recorded.feature_values) == [1.0, 0.5]
    assert recorded.thresholds.review == pytest.approx(0.3)


@pytest.mark.parametrize("failure", [InferenceError("down"), float("nan"), 1.7])
async def test_triton_failure_or_garbage_gives_degraded_review(failure: float | Exception) -> None:
    deps = ScoringDeps(catalog=champion_catalog(), runner=FakeRunner(failure), predictions=FakePredictions())
    response = await score_features(req(), deps)
    assert response.decision == common.DECISION_REVIEW and response.degraded
    assert response.scoring_path == common.SCORING_PATH_SAFE_MODE_RULES
    assert response.reason_codes[0].code == "SAFE_MODE"


async def test_no_champion_means_safe_mode() -> None:
    deps = ScoringDeps(catalog=ModelCatalog(), runner=FakeRunner(0.1), predictions=FakePredictions())
    response = await score_features(req(), deps)
    assert response.degraded and "no champion" in response.reason_codes[0].description


async def test_retry_returns_the_first_recorded_decision() -> None:
    log = FakePredictions()
    runner = FakeRunner(0.9)
    deps = ScoringDeps(catalog=champion_catalog(), runner=runner, predictions=log)
    first = await score_features(req(), deps)
    runner.result = 0.1  # the model changed meanwhile: the recorded decision still stands
    again = await score_features(req(), deps)
    assert again.decision == first.decision == common.DECISION_DECLINE
