"""One id, one transaction, forever: ingest's use cases over the real JetStream log (issue 12, item 5).

The streams here have a 0.2 s duplicate window, so "after the window" needs no 120 s wait: what keeps an id
claimed is the expected-sequence check on ``fraud.tx.received.*.<id>``, not the dedupe.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudml.datagen import synthetic_pan
from fraudshared import subjects
from fraudshared.events import EventStore, default_specs, ensure_streams, event_id, new_envelope
from fraudshared.events.once import OnceLog, first_message, later_messages
from fraudshared.nats_server import NatsServer
from fraudshared.privacy.keys import SqliteSubjectKeyStore
from fraudshared.privacy.resolver import SubjectResolver
from services.ingest.adapters.event_log import JetStreamTransactionLog
from services.ingest.domain.errors import TransactionIdReused, UnknownTransaction
from services.ingest.domain.pan import PanTokenizer
from services.ingest.service_layer.handlers import IngestDeps, report_label, score_transaction

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
WINDOW_S = 0.2
WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)


class RecordingDecisions:
    """A decision path that records PredictionMade once, as scoring does, and counts decisions made."""

    def __init__(self, once: OnceLog) -> None:
        self.once, self.calls = once, 0

    async def decide(self, request: features.ComputeFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        self.calls += 1
        made = events.PredictionMade(
            schema_version=1,
            transaction_id=request.transaction_id,
            subject_id=request.subject_id,
            decision=common.DECISION_DECLINE,
            score=0.5 + self.calls / 100,  # each decision made tells itself apart
        )
        recorded = await self.once.append_once(
            made,
            business_id=request.transaction_id,
            subject=subjects.prediction_made(subjects.card_key(request), request.transaction_id),
            stream="PREDICTIONS",
            time=WHEN,
        )
        kept = recorded or made
        return scoring.ScoreFeaturesResponse(decision=kept.decision, score=kept.score)


@dataclass
class Ingest:
    js: JetStreamContext
    deps: IngestDeps
    decisions: RecordingDecisions

    def partition(self, pan: str) -> int:
        token = self.deps.tokenizer.tokenize(pan)
        return subjects.partition_of(self.deps.subjects.store.get_or_create(token).subject_id)

    async def stored(self, stream: str, subject: str) -> int:
        info = await self.js.stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())


@pytest_asyncio.fixture(loop_scope="session")
async def ingest_log() -> AsyncIterator[Ingest]:
    root = Path(tempfile.mkdtemp(prefix="ingest-once-"))
    with NatsServer(root / "nats") as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_streams(js, default_specs(duplicate_window=WINDOW_S))
            once = OnceLog(js, EventStore(js), source="/test/ingest")
            decisions = RecordingDecisions(once)
            deps = IngestDeps(
                log=JetStreamTransactionLog(once),
                decisions=decisions,
                tokenizer=PanTokenizer(b"k" * 32),
                subjects=SubjectResolver(SqliteSubjectKeyStore(root / "subject-keys.db")),
            )
            yield Ingest(js, deps, decisions)
        finally:
            await nc.close()


def request(tx_id: str, pan: str, amount: int = 1250) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest(
        transaction_id=tx_id, pan=pan, terminal_id="T1", amount=money_pb2.Money(amount_minor=amount, currency="EUR")
    )
    r.event_time.FromDatetime(WHEN)
    return r


async def test_an_id_is_claimed_once_across_partitions_within_and_after_the_dedupe_window(ingest_log: Ingest) -> None:
    card = synthetic_pan(1)
    # Other cards, each on another partition than the first (the guard used to look at the card's own only).
    others = [
        p for p in (synthetic_pan(n) for n in range(2, 60)) if ingest_log.partition(p) != ingest_log.partition(card)
    ]
    first = await score_transaction(request("once-1", card), ingest_log.deps)
    assert not first.replayed and ingest_log.decisions.calls == 1
    for attempt in range(2):  # within the duplicate window, then after it
        for other in others[:3]:
            with pytest.raises(TransactionIdReused, match="already used for another transaction"):
                await score_transaction(request("once-1", other), ingest_log.deps)
        again = await score_transaction(request("once-1", card), ingest_log.deps)
        assert again.replayed and (again.decision, again.score) == (first.decision, first.score)
        assert await ingest_log.stored("TRANSACTIONS", subjects.transaction_received_any("once-1")) == 1
        assert await ingest_log.stored("PREDICTIONS", subjects.prediction_made_any("once-1")) == 1
        assert ingest_log.decisions.calls == 1
        if attempt == 0:
            await asyncio.sleep(WINDOW_S * 2)  # the dedupe entries expire; the claim does not


async def test_readers_take_the_first_event_and_a_forged_later_one_is_a_conflict(ingest_log: Ingest) -> None:
    card = synthetic_pan(7)
    first = await score_transaction(request("once-forged", card), ingest_log.deps)
    recorded = await ingest_log.deps.log.find_received("once-forged")
    assert recorded is not None
    received_on = subjects.transaction_received(subjects.card_key(recorded), "once-forged")
    predicted_on = subjects.prediction_made(subjects.card_key(recorded), "once-forged")
    store = EventStore(ingest_log.js)
    forged = events.PredictionMade(
        schema_version=1, transaction_id="once-forged", subject_id=recorded.subject_id, decision=common.DECISION_APPROVE
    )
    envelope = new_envelope(
        forged,
        source="/forger",
        subject="once-forged",
        event_id=event_id("Forged", "once-forged"),
        time=WHEN,
        schema_version=1,
    )
    await store.append(envelope, subject=predicted_on)  # no expected-sequence header: stored after the record
    copy = events.TransactionReceived()
    copy.CopyFrom(recorded)
    copy.amount.amount_minor = 1
    envelope = new_envelope(
        copy,
        source="/forger",
        subject="once-forged",
        event_id=event_id("ForgedTx", "once-forged"),
        time=WHEN,
        schema_version=1,
    )
    await store.append(envelope, subject=received_on)

    again = await score_transaction(request("once-forged", card), ingest_log.deps)
    assert again.replayed and (again.decision, again.score) == (first.decision, first.score)
    assert (await ingest_log.deps.log.find_received("once-forged")) == recorded
    head = await first_message(ingest_log.js, "PREDICTIONS", subjects.prediction_made_any("once-forged"))
    assert head is not None
    later = await later_messages(ingest_log.js, "PREDICTIONS", subjects.prediction_made_any("once-forged"), head.seq)
    assert len(later) == 1 and later[0].seq > head.seq
    assert later[0].envelope().source == "/forger" and head.envelope().source == "/test/ingest"


async def test_an_unreadable_recorded_event_keeps_its_id_taken_and_answers_a_domain_error(ingest_log: Ingest) -> None:
    await ingest_log.js.publish("fraud.tx.received.3.once-garbage", b"\xff not an envelope")
    with pytest.raises(TransactionIdReused, match="cannot be read"):
        await score_transaction(request("once-garbage", synthetic_pan(9)), ingest_log.deps)
    label = ingest.ReportLabelRequest(transaction_id="once-garbage", is_fraud=True, source="chargeback")
    with pytest.raises(UnknownTransaction, match="cannot be read"):
        await report_label(label, ingest_log.deps)
    assert await ingest_log.stored("TRANSACTIONS", subjects.transaction_received_any("once-garbage")) == 1
