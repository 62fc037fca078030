"""Audit replay and label subjects: a forged relabel on the old subject form is a conflict, not folded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nats
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2, money_pb2
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.audit.replay import replay_decisions
from fraudshared.audit.replay_models import ReplayError
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.events.streams import ensure_streams
from fraudshared.features import FEATURE_SET_VERSION, FeatureEngine, Transaction, recorded
from fraudshared.nats_server import NatsServer

pytestmark = pytest.mark.integration
CARD, TERMINAL = "lc-1", "lt-1"
T1 = datetime(2027, 4, 1, 10, 0, tzinfo=UTC)


class NoArtifacts:
    """Safe-mode decisions need no model: fetching one is a test failure."""

    def fetch(self, sha256: str) -> bytes:
        raise ReplayError(f"no artifact {sha256[:12]} in this test")


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(moment)
    return when


async def append(js: JetStreamContext, message: Message, subject: str, key: str) -> int:
    kind = message.DESCRIPTOR.name
    envelope = new_envelope(
        message, source="/test", subject=key, event_id=event_id(kind, key), time=T1, schema_version=1
    )
    return (await EventStore(js).append(envelope, subject=subject)).seq


def computed(tx: Transaction, values: list[float]) -> tx_events.FeatureVectorComputed:
    return tx_events.FeatureVectorComputed(
        schema_version=1,
        transaction_id=tx.tx_id,
        card_token=CARD,
        feature_set_version=FEATURE_SET_VERSION,
        values=values,
        event_time=stamp(datetime.fromtimestamp(tx.event_time_us / 1e6, UTC)),
        terminal_id=TERMINAL,
        amount=money_pb2.Money(amount_minor=tx.amount_minor, currency="EUR"),
    )


def label(is_fraud: bool, labels_seq: int, principal: str) -> tx_events.LabelApplied:
    return tx_events.LabelApplied(
        schema_version=1,
        transaction_id="lb-1",
        card_token=CARD,
        terminal_id=TERMINAL,
        event_time=stamp(T1),
        is_fraud=is_fraud,
        reported_at=stamp(T1 + timedelta(hours=1)),
        labels_sequence=labels_seq,
        principal=principal,
    )


async def record_with_forged_relabel(js: JetStreamContext) -> tuple[int, int]:
    """lb-1, its fraud label (LABELS seq 1), a forged old-form 'not fraud' relabel, then lb-2 decided in safe mode.

    Returns:
        The FEATURES sequences of the label in force and of the forged relabel.
    """
    engine = FeatureEngine()
    first = Transaction.create("lb-1", T1, CARD, TERMINAL, 1200)
    await append(
        js, computed(first, list(engine.values_for(first))), subjects.feature_vector_computed(CARD, "lb-1"), "lb-1"
    )
    engine.apply(first)
    applied = label(True, 1, "user:dev-labeler")
    partition = subjects.partition_of(CARD)
    label_seq = await append(js, applied, subjects.label_applied(CARD, "lb-1", 1), "lb-1-label")
    recorded.fold(engine, applied)
    forged = label(False, 0, "user:mallory")  # written without the guard, on the subject form before corrections
    forged_seq = await append(js, forged, f"fraud.features.label.{partition}.lb-1", "lb-1-forged")

    second = Transaction.create("lb-2", T1 + timedelta(hours=2), CARD, TERMINAL, 900)
    values = list(np.asarray(engine.values_for(second), dtype=np.float32))
    forged_engine = FeatureEngine()  # what folding the forgery would have computed: a different vector
    forged_engine.apply(first)
    recorded.fold(forged_engine, applied)
    recorded.fold(forged_engine, forged)
    assert list(forged_engine.values_for(second)) != list(engine.values_for(second))
    await append(js, computed(second, values), subjects.feature_vector_computed(CARD, "lb-2"), "lb-2")
    prediction = tx_events.PredictionMade(
        schema_version=1,
        transaction_id="lb-2",
        card_token=CARD,
        feature_set_version=FEATURE_SET_VERSION,
        feature_values=values,
        event_time=stamp(T1 + timedelta(hours=2)),
        decision=decision_pb2.DECISION_REVIEW,
        scoring_path=decision_pb2.SCORING_PATH_SAFE_MODE_RULES,
    )
    prediction.reason_codes.add(code="SAFE_MODE")
    await append(js, prediction, subjects.prediction_made(CARD, "lb-2"), "lb-2")
    return label_seq, forged_seq


@pytest.mark.asyncio(loop_scope="session")
async def test_an_old_form_relabel_after_a_label_is_a_named_conflict_and_not_folded(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("relabel")
    with NatsServer(root / "nats") as srv:
        nc = await nats.connect(srv.url)
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_streams(js)
            label_seq, forged_seq = await record_with_forged_relabel(js)
            replay = await replay_decisions(js, NoArtifacts(), transaction_id="lb-2")
        finally:
            await nc.close()
    assert [(d.transaction_id, d.mismatches) for d in replay.decisions] == [("lb-2", [])]
    partition = subjects.partition_of(CARD)
    assert replay.findings == [
        f"FEATURES seq {forged_seq}: a label on the old subject form fraud.features.label.{partition}.lb-1 after a "
        f"label of its transaction (seq {label_seq}) conflicts with it and is not folded"
    ]
    assert not replay.ok
