"""ReportLabel as accountable facts and ForgetCardholder, through the use cases with small fakes of the ports."""

from __future__ import annotations

import pytest

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudshared.identity import NoPrincipal, Principal, acting_as
from fraudshared.privacy import ERASED, read_field
from services.ingest.domain.errors import CardholderUnknown, InvalidTransaction, LabelContention
from services.ingest.service_layer.handlers import report_label, score_transaction
from services.ingest.service_layer.privacy import forget_cardholder
from tests.unit.test_ingest_handlers import PAN, FakeErasureLog, FakeLabelLog, make_deps, request

ANN, BOB, CB = Principal("user", "ann"), Principal("user", "bob"), Principal("service", "chargebacks")
ANALYST, CHARGEBACK = events.LABEL_SOURCE_ANALYST, events.LABEL_SOURCE_CHARGEBACK


def label(is_fraud: bool, source: int = ANALYST, tx: str = "tx-1") -> ingest.ReportLabelRequest:
    return ingest.ReportLabelRequest(transaction_id=tx, is_fraud=is_fraud, source="ref-1", label_source=source)


async def report(who: Principal, request: ingest.ReportLabelRequest, deps) -> ingest.ReportLabelResponse:  # type: ignore[no-untyped-def]
    with acting_as(who):
        return await report_label(request, deps)


def recorded(deps) -> list[events.LabelReported]:  # type: ignore[no-untyped-def]
    assert isinstance(deps.labels, FakeLabelLog)
    return deps.labels.labels.get("tx-1", [])


async def test_every_label_is_recorded_with_its_principal_and_source_and_answers_what_it_did() -> None:
    deps, log, _, _ = make_deps()
    await score_transaction(request(), deps)
    first = await report(ANN, label(False), deps)
    assert (first.appended, first.outcome, first.is_fraud_in_force) == (True, ingest.LABEL_OUTCOME_FIRST, False)
    corrected = await report(CB, label(True, CHARGEBACK), deps)
    assert corrected.outcome == ingest.LABEL_OUTCOME_CORRECTION and corrected.is_fraud_in_force
    assert corrected.label_source_in_force == CHARGEBACK
    outranked = await report(BOB, label(False), deps)  # an analyst after the chargeback: recorded, not in force
    assert (outranked.appended, outranked.outcome) == (True, ingest.LABEL_OUTCOME_OUTRANKED)
    assert outranked.is_fraud_in_force and outranked.label_source_in_force == CHARGEBACK
    confirmed = await report(ANN, label(True, CHARGEBACK), deps)
    assert confirmed.outcome == ingest.LABEL_OUTCOME_CONFIRMATION
    labels = recorded(deps)
    assert [(x.principal, x.label_source, x.is_fraud) for x in labels] == [
        ("user:ann", ANALYST, False),
        ("service:chargebacks", CHARGEBACK, True),
        ("user:bob", ANALYST, False),
        ("user:ann", CHARGEBACK, True),
    ]
    received = log.received["tx-1"]
    assert all(x.schema_version == 2 and x.subject_id == received.subject_id and x.source == "ref-1" for x in labels)


async def test_an_identical_retry_records_nothing_but_a_change_of_mind_does() -> None:
    deps, _, _, _ = make_deps()
    await score_transaction(request(), deps)
    await report(ANN, label(True), deps)
    again = await report(ANN, label(True), deps)
    assert (again.appended, again.outcome, again.is_fraud_in_force) == (False, ingest.LABEL_OUTCOME_DUPLICATE, True)
    assert len(recorded(deps)) == 1
    changed = await report(ANN, label(False), deps)
    assert changed.outcome == ingest.LABEL_OUTCOME_CORRECTION and not changed.is_fraud_in_force
    assert len(recorded(deps)) == 2


async def test_the_recorded_principal_is_the_caller_and_without_one_nothing_is_recorded() -> None:
    deps, _, _, _ = make_deps()
    await score_transaction(request(), deps)
    with pytest.raises(NoPrincipal):
        await report_label(label(True), deps)
    assert recorded(deps) == []
    # The request has no field naming a reporter: a "forged" reporter can only be the caller itself.
    assert "principal" not in ingest.ReportLabelRequest.DESCRIPTOR.fields_by_name


async def test_a_label_racing_another_is_classified_against_the_history_it_follows() -> None:
    deps, _, _, _ = make_deps()
    await score_transaction(request(), deps)
    assert isinstance(deps.labels, FakeLabelLog)
    chargeback = events.LabelReported(
        schema_version=2, transaction_id="tx-1", is_fraud=True, label_source=CHARGEBACK, principal="service:cb"
    )
    deps.labels.interleave.append(chargeback)  # lands between ann's read and her append
    answered = await report(ANN, label(False), deps)
    assert answered.outcome == ingest.LABEL_OUTCOME_OUTRANKED and answered.is_fraud_in_force
    assert [x.principal for x in recorded(deps)] == ["service:cb", "user:ann"]


async def test_labels_that_never_stop_racing_give_up_with_a_retryable_error() -> None:
    deps, _, _, _ = make_deps()
    await score_transaction(request(), deps)
    assert isinstance(deps.labels, FakeLabelLog)
    other = events.LabelReported(schema_version=2, transaction_id="tx-1", label_source=ANALYST, principal="user:x")
    deps.labels.interleave.extend([other] * 10)
    with pytest.raises(LabelContention):
        await report(ANN, label(True), deps)


async def test_forget_cardholder_records_the_principal_and_destroys_the_key() -> None:
    deps, log, _, _ = make_deps()
    await score_transaction(request(), deps)
    received = log.received["tx-1"]
    with acting_as(Principal("user", "dev-privacy-officer")):
        answer = await forget_cardholder(ingest.ForgetCardholderRequest(pan=PAN, reason="ticket 7"), deps)
        assert answer.subject_id == received.subject_id and answer.recorded
        with pytest.raises(CardholderUnknown, match="already forgotten"):
            await forget_cardholder(ingest.ForgetCardholderRequest(pan=PAN, reason="again"), deps)
        with pytest.raises(InvalidTransaction):
            await forget_cardholder(ingest.ForgetCardholderRequest(pan="4111111111111112", reason="x"), deps)
    assert isinstance(deps.erasures, FakeErasureLog)
    erased = deps.erasures.erased[received.subject_id]
    assert (erased.requested_by, erased.reason, erased.schema_version) == ("user:dev-privacy-officer", "ticket 7", 2)
    assert read_field(deps.subjects.store, received.subject_id, "card_token", received.sealed_card_token) == ERASED


async def test_forget_by_card_token_and_nothing_happens_without_a_principal() -> None:
    deps, log, _, _ = make_deps()
    await score_transaction(request(), deps)
    token = deps.tokenizer.tokenize(PAN)
    forget = ingest.ForgetCardholderRequest(card_token=token, reason="r")
    with pytest.raises(NoPrincipal):
        await forget_cardholder(forget, deps)
    assert deps.subjects.store.find(token) is not None
    with acting_as(Principal("user", "dpo")):
        assert (await forget_cardholder(forget, deps)).subject_id == log.received["tx-1"].subject_id
    assert deps.subjects.store.find(token) is None
