"""Ingest use cases: ScoreTransaction and ReportLabel (ForgetCardholder: service_layer/privacy.py).

ScoreTransaction is idempotent by transaction id: the TransactionReceived append claims the id once across
all partitions, forever, so a retry finds the first append and answers the recorded decision (or, when the
first attempt died before deciding, finishes it: features and scoring are idempotent by transaction id too),
and the same id with another card or other details is refused (TransactionIdReused).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared.features import labels as precedence
from fraudshared.identity import Principal, current_principal
from fraudshared.privacy import CARD_TOKEN_FIELD, SubjectKey, seal
from fraudshared.privacy.resolver import SubjectResolver
from fraudshared.subjects import card_key
from services.ingest.domain.errors import (
    InvalidTransaction,
    LabelContention,
    TransactionIdReused,
    UnknownTransaction,
)
from services.ingest.domain.label_sources import check_label_source
from services.ingest.domain.pan import PanTokenizer, luhn_valid
from services.ingest.service_layer.ports import DecisionPath, ErasureLog, LabelLog, TransactionLog

SCHEMA_VERSION = 1
LABEL_ATTEMPTS = 5  # labels of one transaction racing each other: each attempt rereads the history
OUTCOME = {
    precedence.Outcome.FIRST: ingest.LABEL_OUTCOME_FIRST,
    precedence.Outcome.CORRECTION: ingest.LABEL_OUTCOME_CORRECTION,
    precedence.Outcome.CONFIRMATION: ingest.LABEL_OUTCOME_CONFIRMATION,
    precedence.Outcome.OUTRANKED: ingest.LABEL_OUTCOME_OUTRANKED,
    precedence.Outcome.DUPLICATE: ingest.LABEL_OUTCOME_DUPLICATE,
}


@dataclass
class IngestDeps:
    """What the use cases need, wired by bootstrap."""

    log: TransactionLog
    decisions: DecisionPath
    tokenizer: PanTokenizer
    subjects: SubjectResolver
    downstream_timeout_s: float = 2.0
    labels: LabelLog | None = None  # ReportLabel needs it (bootstrap always wires it)
    erasures: ErasureLog | None = None  # ForgetCardholder needs it (bootstrap always wires it)
    roles_of: Callable[[Principal], frozenset[str]] | None = None  # the live grants (ReportLabel's source kinds)


def card_token_of(request: ingest.ScoreTransactionRequest, tokenizer: PanTokenizer) -> str:
    """Check and tokenize the PAN; the PAN goes no further than this."""
    if not luhn_valid(request.pan):
        raise InvalidTransaction("pan", "fails the Luhn check", "pan.luhn")
    return tokenizer.tokenize(request.pan)


def to_event(
    request: ingest.ScoreTransactionRequest, card_token: str, key_version: int, subject: SubjectKey
) -> events.TransactionReceived:
    """The TransactionReceived of a request; never the PAN.

    The subject id is in clear, the card token only sealed under the subject's key (so `fraudctl privacy
    forget` can make it unreadable).
    """
    event = events.TransactionReceived(
        schema_version=SCHEMA_VERSION,
        transaction_id=request.transaction_id,
        subject_id=subject.subject_id,
        sealed_card_token=seal(subject, CARD_TOKEN_FIELD, card_token),
        terminal_id=request.terminal_id,
        amount=request.amount,
        event_time=request.event_time,
        merchant_category_code=request.merchant_category_code,
        channel=request.channel,
        token_key_version=key_version,
        terminal_location=request.terminal_location if request.HasField("terminal_location") else None,
    )
    event.received_at.FromDatetime(datetime.now(UTC))
    return event


def _same_transaction(a: events.TransactionReceived, b: events.TransactionReceived) -> bool:
    fields = (
        "card_token",
        "subject_id",
        "terminal_id",
        "amount",
        "event_time",
        "merchant_category_code",
        "channel",
        "terminal_location",
    )
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def _response(
    transaction_id: str, prediction: events.PredictionMade | scoring.ScoreFeaturesResponse, replayed: bool
) -> ingest.ScoreTransactionResponse:
    """The caller's answer from a decision, recorded (a retry) or just made (both carry the same fields)."""
    return ingest.ScoreTransactionResponse(
        transaction_id=transaction_id,
        decision=prediction.decision,
        score=prediction.score,
        reason_codes=prediction.reason_codes,
        model=prediction.model,
        scoring_path=prediction.scoring_path,
        degraded=prediction.degraded,
        replayed=replayed,
    )


async def score_transaction(
    request: ingest.ScoreTransactionRequest, deps: IngestDeps, budget_s: float | None = None
) -> ingest.ScoreTransactionResponse:
    """Validate, tokenize, append TransactionReceived, then compute features and the decision.

    `budget_s` is what the caller still waits (its deadline); downstream calls get what is left of it,
    capped by the configured timeout, so nothing runs on after the caller gave up.
    """
    deadline = time.monotonic() + min(budget_s, deps.downstream_timeout_s) if budget_s else None

    def left() -> float:
        return deps.downstream_timeout_s if deadline is None else deadline - time.monotonic()

    card_token = card_token_of(request, deps.tokenizer)
    subject = await deps.subjects.resolve(card_token)
    event = to_event(request, card_token, deps.tokenizer.key_version, subject)
    stored = await deps.log.append_received(event)
    replayed = stored is not None
    if stored is not None:
        if not _same_transaction(stored, event):
            raise TransactionIdReused(
                f"transaction_id {request.transaction_id} was already used for another transaction"
            )
        event = stored
        prediction = await deps.log.find_prediction(card_key(event), event.transaction_id)
        if prediction is not None:
            return _response(prediction.transaction_id, prediction, replayed=True)
    decided = await deps.decisions.decide(
        features.ComputeFeaturesRequest(
            transaction_id=event.transaction_id,
            card_token=event.card_token,
            subject_id=event.subject_id,
            terminal_id=event.terminal_id,
            amount=event.amount,
            event_time=event.event_time,
            terminal_location=event.terminal_location if event.HasField("terminal_location") else None,
        ),
        timeout=left(),
    )
    return _response(event.transaction_id, decided, replayed)


async def report_label(request: ingest.ReportLabelRequest, deps: IngestDeps) -> ingest.ReportLabelResponse:
    """Record a delayed label for a transaction the log holds, as the calling principal.

    Every label is recorded (a correction or an outranked one too), except an identical retry; the answer
    says what it did to the label in force (`fraudshared.features.labels`, the precedence every reader uses).
    """
    received = await deps.log.find_received(request.transaction_id)
    if received is None:
        raise UnknownTransaction(f"transaction_id {request.transaction_id} is not in the log")
    if deps.labels is None or deps.roles_of is None:
        raise RuntimeError("ingest was wired without a label log or the caller's roles")
    caller = current_principal()
    check_label_source(request.label_source, deps.roles_of(caller), caller.id)
    label = events.LabelReported(
        schema_version=precedence.LABEL_SCHEMA_VERSION,
        transaction_id=request.transaction_id,
        is_fraud=request.is_fraud,
        source=request.source,
        label_source=request.label_source,
        principal=caller.id,
        reported_at=request.reported_at,
        card_token=received.card_token,
        subject_id=received.subject_id,
        terminal_id=received.terminal_id,
        event_time=received.event_time,
    )
    new = precedence.fact_of(label)
    for _ in range(LABEL_ATTEMPTS):
        history, last_seq = await deps.labels.history(request.transaction_id)
        facts = [precedence.fact_of(recorded) for recorded in history]
        outcome = precedence.classify(facts, new)
        if outcome is precedence.Outcome.DUPLICATE:
            return _label_response(False, outcome, precedence.in_force(facts))
        if await deps.labels.append(label, last_seq):
            in_force, _ = precedence.apply(precedence.in_force(facts), new)
            return _label_response(True, outcome, in_force)
    raise LabelContention(
        f"labels of transaction_id {request.transaction_id} kept changing while recording this one; retry"
    )


def _label_response(
    appended: bool, outcome: precedence.Outcome, in_force: precedence.LabelFact | None
) -> ingest.ReportLabelResponse:
    return ingest.ReportLabelResponse(
        appended=appended,
        outcome=OUTCOME[outcome],
        is_fraud_in_force=bool(in_force and in_force.is_fraud),
        label_source_in_force=in_force.source if in_force else events.LABEL_SOURCE_UNSPECIFIED,
    )
