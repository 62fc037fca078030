"""Scoring: thresholds, catalog fold, safe mode, idempotent PredictionMade (fakes of our own ports)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from aiobreaker import CircuitBreaker
from prometheus_client import REGISTRY

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from services.scoring.adapters.breaker_log import BreakerLog
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
    def __init__(self, score: float | Exception, live: bool = True) -> None:
        self.result = score
        self.is_live = live

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def live(self, timeout: float) -> bool:
        return self.is_live


class FakePredictions:
    def __init__(self) -> None:
        self.recorded: dict[str, events.PredictionMade] = {}

    async def append_shadow(self, event: events.ShadowScored) -> None:
        pass

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
    from services.scoring.service_layer.handlers import FALLBACKS

    before = FALLBACKS.labels("safe_mode", "error")._value.get()
    deps = ScoringDeps(catalog=champion_catalog(), runner=FakeRunner(failure), predictions=FakePredictions())
    response = await score_features(req(), deps)
    assert FALLBACKS.labels("safe_mode", "error")._value.get() == before + 1  # counted in the metric
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


class FakeLocal:
    def __init__(self, score: float | None = None, contributions: list[float] | None = None) -> None:
        self.result = score
        self.contribs = contributions
        self.prepared: list[str] = []

    def prepare(self, model: object) -> None:
        self.prepared.append(model.version)  # type: ignore[attr-defined]

    def score(self, sha256: str, values: Sequence[float]) -> float | None:
        return self.result

    def contributions(self, sha256: str, values: Sequence[float]) -> list[float] | None:
        return self.contribs


class CountingRunner(FakeRunner):
    def __init__(self, score: float | Exception) -> None:
        super().__init__(score)
        self.calls = 0

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        self.calls += 1
        return await super().score(triton_model_name, values, timeout)


def decisions_on(path: str) -> float:
    from services.scoring.service_layer.handlers import DECISIONS

    return DECISIONS.labels(path)._value.get()


async def test_triton_down_falls_to_the_in_process_copy_of_the_same_model_flagged_degraded() -> None:
    log = FakePredictions()
    deps = ScoringDeps(
        catalog=champion_catalog(), runner=FakeRunner(InferenceError("down")), predictions=log,
        local=FakeLocal(score=0.9),
    )  # fmt: skip
    before = decisions_on("local_onnx")
    response = await score_features(req(), deps)
    assert response.scoring_path == common.SCORING_PATH_LOCAL_ONNX and response.degraded
    assert response.decision == common.DECISION_DECLINE and response.model.version == "1.0.0"
    assert log.recorded["tx-1"].degraded  # the monitor and the audit trail see it too
    assert [r.code for r in response.reason_codes] == ["MODEL_SCORE_AT_DECLINE_THRESHOLD"]  # what replay re-derives
    assert decisions_on("local_onnx") == before + 1


async def test_decisions_are_counted_by_scoring_path_once_per_transaction() -> None:
    deps = ScoringDeps(catalog=champion_catalog(), runner=FakeRunner(0.1), predictions=FakePredictions())
    before = decisions_on("triton"), decisions_on("safe_mode_rules")
    first = await score_features(req("tx-a"), deps)
    await score_features(req("tx-a"), deps)  # a retry answers the recorded decision: not a second decision
    deps.catalog = ModelCatalog()
    await score_features(req("tx-b"), deps)
    assert first.scoring_path == common.SCORING_PATH_TRITON and not first.degraded
    assert (decisions_on("triton"), decisions_on("safe_mode_rules")) == (before[0] + 1, before[1] + 1)


async def test_breaker_opens_after_repeated_failures_and_stops_calling_triton() -> None:
    runner = CountingRunner(InferenceError("down"))
    deps = ScoringDeps(catalog=champion_catalog(), runner=runner, predictions=FakePredictions(), local=FakeLocal(0.1))
    for i in range(8):
        response = await score_features(req(f"tx-{i}"), deps)
        assert response.scoring_path == common.SCORING_PATH_LOCAL_ONNX
    assert runner.calls == deps.breaker.fail_max  # open: later calls skip Triton


async def test_the_breaker_says_when_it_opens_and_why(caplog: pytest.LogCaptureFixture) -> None:
    runner = CountingRunner(InferenceError("deadline exceeded"))
    breaker = CircuitBreaker(fail_max=3, name="triton", listeners=[BreakerLog()])
    deps = ScoringDeps(
        catalog=champion_catalog(), runner=runner, predictions=FakePredictions(), local=FakeLocal(0.1), breaker=breaker
    )
    with caplog.at_level(logging.INFO):
        for i in range(4):
            await score_features(req(f"tx-open-{i}"), deps)
    opened = [r.getMessage() for r in caplog.records if "-> open" in r.getMessage()]
    assert opened == ["triton breaker closed -> open (last failure: InferenceError: deadline exceeded)"]
    BreakerLog().state_change(breaker, breaker.current_state, breaker.current_state)  # re-entering: not a change
    assert [r.getMessage() for r in caplog.records if "-> open" in r.getMessage()] == opened
    assert REGISTRY.get_sample_value("fraud_scoring_breaker_open", {"breaker": "triton"}) == 1


async def test_reason_codes_name_the_features_that_raised_the_score() -> None:
    deps = ScoringDeps(
        catalog=champion_catalog(), runner=FakeRunner(0.95), predictions=FakePredictions(),
        local=FakeLocal(contributions=[1.2, -0.4]),
    )  # fmt: skip
    deps.catalog.registered[("gbdt", "1.0.0")].explainer_artifact_sha256 = "cd" * 32
    deps.catalog.registered[("gbdt", "1.0.0")].feature_names[:] = ["amount", "is_night"]
    deps.catalog.apply(
        model_events.ModelDeployed(model_name="gbdt", version="1.0.0", role=model_events.DEPLOYMENT_ROLE_CHAMPION)
    )
    response = await score_features(req(), deps)
    codes = [r.code for r in response.reason_codes]
    assert codes == ["MODEL_SCORE_AT_DECLINE_THRESHOLD", "AMOUNT_RAISED_RISK"]
    assert response.reason_codes[1].contribution == pytest.approx(1.2)


def test_canary_split_is_a_stable_hash_of_the_card_token() -> None:
    from services.scoring.domain.routing import canary_bucket, deciding_model

    catalog = champion_catalog()
    catalog.apply(
        model_events.ModelRegistered(model_name="gbdt", version="2.0.0", feature_set_version="card-v1",
                                     thresholds=THRESHOLDS, feature_names=["amount"])
    )  # fmt: skip
    catalog.apply(
        model_events.ModelDeployed(model_name="gbdt", version="2.0.0", role=model_events.DEPLOYMENT_ROLE_CANARY,
                                   canary_percent=30)
    )  # fmt: skip
    tokens = [f"ct_{i}" for i in range(2000)]
    routed = [deciding_model(catalog, canary_bucket(t)) for t in tokens]
    share = sum(is_canary for _, is_canary in routed) / len(tokens)
    assert 0.25 < share < 0.35
    assert all(m is not None and m.version == ("2.0.0" if c else "1.0.0") for m, c in routed)
    assert [canary_bucket(t) for t in tokens] == [canary_bucket(t) for t in tokens]


def test_promotion_rollback_and_retirement_move_the_roles() -> None:
    catalog = champion_catalog()
    catalog.apply(
        model_events.ModelRegistered(model_name="gbdt", version="2.0.0", feature_set_version="card-v1",
                                     thresholds=THRESHOLDS, feature_names=["amount"])
    )  # fmt: skip
    catalog.apply(
        model_events.ModelDeployed(model_name="gbdt", version="2.0.0", role=model_events.DEPLOYMENT_ROLE_SHADOW)
    )
    assert catalog.shadow is not None and catalog.shadow.version == "2.0.0"
    catalog.apply(model_events.ModelPromoted(model_name="gbdt", version="2.0.0", previous_version="1.0.0"))
    assert catalog.champion is not None and catalog.champion.version == "2.0.0" and catalog.shadow is None
    catalog.apply(model_events.ModelRolledBack(model_name="gbdt", from_version="2.0.0", to_version="1.0.0"))
    assert catalog.champion is not None and catalog.champion.version == "1.0.0"
    catalog.apply(model_events.ModelRetired(model_name="gbdt", version="1.0.0"))
    assert catalog.champion is None


async def test_shadow_is_scored_after_the_answer_and_recorded() -> None:
    log = FakePredictions()
    shadows: list[events.ShadowScored] = []

    async def append_shadow(event: events.ShadowScored) -> None:
        shadows.append(event)

    log.append_shadow = append_shadow  # type: ignore[attr-defined]
    catalog = champion_catalog()
    catalog.apply(
        model_events.ModelRegistered(model_name="gbdt", version="2.0.0", feature_set_version="card-v1",
                                     thresholds=THRESHOLDS, feature_names=["amount"])
    )  # fmt: skip
    catalog.apply(
        model_events.ModelDeployed(model_name="gbdt", version="2.0.0", role=model_events.DEPLOYMENT_ROLE_SHADOW)
    )
    deps = ScoringDeps(catalog=catalog, runner=FakeRunner(0.5), predictions=log)
    response = await score_features(req(), deps)
    assert response.model.version == "1.0.0"  # the shadow never decides
    await asyncio.gather(*deps.shadow_tasks)
    assert [(s.model.version, s.decision) for s in shadows] == [("2.0.0", common.DECISION_REVIEW)]


async def test_overload_policy_safe_mode_answers_without_the_model() -> None:
    runner = CountingRunner(0.1)
    deps = ScoringDeps(catalog=champion_catalog(), runner=runner, predictions=FakePredictions(), safe_mode_above=1)
    deps.in_flight = 1  # one decision already in flight
    response = await score_features(req(), deps)
    assert response.degraded and response.decision == common.DECISION_REVIEW and runner.calls == 0
    assert "overloaded" in response.reason_codes[0].description
