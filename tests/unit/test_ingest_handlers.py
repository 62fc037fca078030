"""Ingest use cases against small in-memory fakes of their ports."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared.identity import Principal, acting_as
from fraudshared.privacy import ERASED, open_sealed, read_field
from fraudshared.privacy.keys import SqliteSubjectKeyStore
from fraudshared.privacy.resolver import SubjectResolver
from services.ingest.adapters.grpc_clients import SequentialDecisionPath
from services.ingest.domain.errors import InvalidTransaction, TransactionIdReused, UnknownTransaction
from services.ingest.domain.pan import PanTokenizer
from services.ingest.service_layer.handlers import IngestDeps, report_label, score_transaction

PAN = "4111111111111111"


class FakeLog:
    def __init__(self) -> None:
        self.received: dict[str, events.TransactionReceived] = {}
        self.predictions: dict[str, events.PredictionMade] = {}

    async def append_received(self, event: events.TransactionReceived) -> events.TransactionReceived | None:
        if event.transaction_id in self.received:
            return self.received[event.transaction_id]
        self.received[event.transaction_id] = event
        return None

    async def find_prediction(self, card_token: str, transaction_id: str) -> events.PredictionMade | None:
        return self.predictions.get(transaction_id)

    async def find_received(self, transaction_id: str) -> events.TransactionReceived | None:
        return self.received.get(transaction_id)


class FakeLabelLog:
    """Labels per transaction in order; `interleave` appends other labels just before an append (a race)."""

    def __init__(self) -> None:
        self.labels: dict[str, list[events.LabelReported]] = {}
        self.interleave: list[events.LabelReported] = []

    async def history(self, transaction_id: str) -> tuple[list[events.LabelReported], int]:
        recorded = self.labels.get(transaction_id, [])
        return list(recorded), len(recorded)

    async def append(self, event: events.LabelReported, expected_last_seq: int) -> bool:
        recorded = self.labels.setdefault(event.transaction_id, [])
        if self.interleave:
            recorded.append(self.interleave.pop(0))
        if len(recorded) != expected_last_seq:
            return False
        recorded.append(event)
        return True


class FakeErasureLog:
    def __init__(self) -> None:
        self.erased: dict[str, privacy_events.SubjectErased] = {}

    async def append_erased(self, event: privacy_events.SubjectErased) -> bool:
        if event.subject_id in self.erased:
            return False
        self.erased[event.subject_id] = event
        return True


class FakeFeatures:
    def __init__(self) -> None:
        self.calls: list[features.ComputeFeaturesRequest] = []

    async def compute(
        self, request: features.ComputeFeaturesRequest, timeout: float
    ) -> features.ComputeFeaturesResponse:
        self.calls.append(request)
        return features.ComputeFeaturesResponse(feature_set_version="card-v1", values=[1.0, 2.0])


class FakeScoring:
    def __init__(self, log: FakeLog) -> None:
        self.log = log
        self.calls = 0

    async def score(self, request: scoring.ScoreFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        self.calls += 1
        self.log.predictions[request.transaction_id] = events.PredictionMade(
            transaction_id=request.transaction_id, decision=common.DECISION_DECLINE, score=0.97
        )
        return scoring.ScoreFeaturesResponse(decision=common.DECISION_DECLINE, score=0.97)


def make_deps() -> tuple[IngestDeps, FakeLog, FakeFeatures, FakeScoring]:
    log, feats = FakeLog(), FakeFeatures()
    scorer = FakeScoring(log)
    keys = SqliteSubjectKeyStore(Path(tempfile.mkdtemp()) / "subject-keys.db")
    deps = IngestDeps(
        log=log,
        decisions=SequentialDecisionPath(feats, scorer),
        tokenizer=PanTokenizer(b"s" * 32),
        subjects=SubjectResolver(keys),
        labels=FakeLabelLog(),
        erasures=FakeErasureLog(),
        roles_of=lambda principal: frozenset({"labeler", "analyst"}),  # may report every source kind
    )
    return deps, log, feats, scorer


def request(tx_id: str = "tx-1", pan: str = PAN, amount: int = 1250) -> ingest.ScoreTransactionRequest:
    req = ingest.ScoreTransactionRequest(
        transaction_id=tx_id, pan=pan, terminal_id="T1", amount=money_pb2.Money(amount_minor=amount, currency="EUR")
    )
    req.event_time.FromDatetime(datetime(2026, 11, 1, 12, tzinfo=UTC))
    return req


async def test_pan_is_tokenized_before_anything_is_appended() -> None:
    deps, log, feats, _ = make_deps()
    response = await score_transaction(request(), deps)
    assert response.decision == common.DECISION_DECLINE and not response.replayed
    stored = log.received["tx-1"]
    assert PAN not in stored.SerializeToString().decode("latin-1")
    token = deps.tokenizer.tokenize(PAN)
    assert token not in stored.SerializeToString().decode("latin-1")  # only sealed, under the card's own key
    assert stored.card_token == "" and len(stored.subject_id) == 32
    subject = deps.subjects.store.find(token)
    assert subject is not None and subject.subject_id == stored.subject_id
    assert open_sealed(subject, "card_token", stored.sealed_card_token) == token
    assert feats.calls[0].subject_id == stored.subject_id and feats.calls[0].card_token == ""


async def test_a_forgotten_card_reads_as_erased_and_comes_back_as_a_new_subject() -> None:
    deps, log, _, _ = make_deps()
    await score_transaction(request(), deps)
    first = log.received["tx-1"]
    assert deps.subjects.store.forget(deps.tokenizer.tokenize(PAN)) == first.subject_id
    assert read_field(deps.subjects.store, first.subject_id, "card_token", first.sealed_card_token) == ERASED
    await score_transaction(request("tx-2"), deps)
    assert log.received["tx-2"].subject_id not in ("", first.subject_id)


async def test_luhn_failure_appends_nothing() -> None:
    deps, log, _, _ = make_deps()
    with pytest.raises(InvalidTransaction) as err:
        await score_transaction(request(pan="4111111111111112"), deps)
    assert err.value.field == "pan" and err.value.rule == "pan.luhn"
    assert log.received == {}


async def test_retry_returns_recorded_decision_without_rescoring() -> None:
    deps, log, _, scorer = make_deps()
    first = await score_transaction(request(), deps)
    again = await score_transaction(request(), deps)
    assert again.replayed and again.decision == first.decision and scorer.calls == 1
    assert len(log.received) == 1


async def test_retry_after_crash_before_decision_finishes_it() -> None:
    deps, log, _, scorer = make_deps()
    await log.append_received(await _event(deps))
    response = await score_transaction(request(), deps)
    assert response.replayed and scorer.calls == 1 and response.decision == common.DECISION_DECLINE


async def _event(deps: IngestDeps) -> events.TransactionReceived:
    from services.ingest.service_layer.handlers import to_event

    token = deps.tokenizer.tokenize(PAN)
    return to_event(request(), token, deps.tokenizer.key_version, deps.subjects.store.get_or_create(token))


async def test_reused_id_for_another_transaction_is_refused() -> None:
    deps, _, _, _ = make_deps()
    await score_transaction(request(), deps)
    with pytest.raises(TransactionIdReused):
        await score_transaction(request(amount=999), deps)


async def test_same_id_with_another_card_is_refused_and_the_first_decision_stays_the_record() -> None:
    deps, log, _, scorer = make_deps()
    first = await score_transaction(request(), deps)
    with pytest.raises(TransactionIdReused, match="already used for another transaction"):
        await score_transaction(request(pan="5500005555555559"), deps)
    again = await score_transaction(request(), deps)
    assert again.replayed and again.score == first.score and scorer.calls == 1 and len(log.received) == 1


async def test_label_for_unknown_transaction_is_refused_and_duplicate_label_not_appended() -> None:
    deps, _, _, _ = make_deps()
    label = ingest.ReportLabelRequest(
        transaction_id="tx-1", is_fraud=True, source="cb-77", label_source=events.LABEL_SOURCE_CHARGEBACK
    )
    with acting_as(Principal("user", "dev-labeler")):
        with pytest.raises(UnknownTransaction):
            await report_label(label, deps)
        await score_transaction(request(), deps)
        assert (await report_label(label, deps)).appended
        assert not (await report_label(label, deps)).appended
    assert isinstance(deps.labels, FakeLabelLog) and len(deps.labels.labels["tx-1"]) == 1
