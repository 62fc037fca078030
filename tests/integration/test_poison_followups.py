"""Follow-ups of "no event can poison a reader" (issue 12), against a real nats-server of each test's own.

- the features rebuild takes the first event on a once-only subject as the record, as `audit replay` does: a
  forged second FeatureVectorComputed or LabelApplied is reported as a conflict, never folded;
- a bad event on a model's own subject does not fence that model's next command: the expected sequence is
  the subject's last stored one, the bad event included;
- the registry projection records the position of a bad event at the stream's tail (SQLite and PostgreSQL).

Bad events are published raw (``js.publish``, no expected-sequence header), as a hostile or broken writer would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from fraud.common.v1 import money_pb2
from fraud.events.v1 import quarantine_events_pb2 as qpb
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraudshared import subjects
from fraudshared.events import EventStore, default_specs, ensure_streams
from fraudshared.events.envelope import event_id, new_envelope, to_nats
from fraudshared.events.once import OnceLog
from fraudshared.events.quarantine import QUARANTINE_STREAM
from fraudshared.nats_server import NatsServer, find_free_port
from services.features.adapters.event_log import JetStreamFeatureLog
from services.features.service_layer.handlers import FeatureState, apply_label, compute_features, rebuild
from services.governance.adapters.event_log import JetStreamModelEvents
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine
from services.governance.domain.commands import ApproveModel
from services.governance.domain.model import Stage
from services.governance.service_layer import handlers, projection
from tests.integration.test_registry_sql import engine  # noqa: F401 - the SQLite/PostgreSQL fixture
from tests.unit.governance.governance_fakes import (
    NAME,
    Clock,
    FakeArtifacts,
    FakeModelServer,
    fake_validate,
    register_cmd,
)

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
ALL = list(range(subjects.DEFAULT_PARTITIONS))
GARBAGE = b"\x00\xffnot an envelope\xfe"


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    """A nats-server of this test's own (the rebuild reads the whole FEATURES stream), all streams created."""
    server = NatsServer(tmp_path / "jetstream", port=find_free_port(), monitor_port=find_free_port()).start()
    nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        context = nc.jetstream(timeout=5.0)
        await ensure_streams(context, default_specs())
        yield context
    finally:
        await nc.close()
        server.stop()


def feature_log(js: JetStreamContext) -> JetStreamFeatureLog:
    store = EventStore(js)
    return JetStreamFeatureLog(OnceLog(js, store, source="/fraud/features"), store, ALL, js=js)


class OneSnapshot:
    """A snapshot store holding one snapshot (a rebuild only loads)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def load(self) -> dict[str, Any] | None:
        return self.snapshot

    def save(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot


def request(tx: str, minutes: int, amount: int = 1000) -> features.ComputeFeaturesRequest:
    r = features.ComputeFeaturesRequest(
        transaction_id=tx,
        card_token="ct_a",
        terminal_id="T1",
        amount=money_pb2.Money(amount_minor=amount, currency="EUR"),
    )
    r.event_time.FromDatetime(T0 + timedelta(minutes=minutes))
    return r


def label(tx: str, minutes: int, is_fraud: bool) -> events.LabelReported:
    reported = events.LabelReported(
        schema_version=1, transaction_id=tx, is_fraud=is_fraud, source="test", card_token="ct_a", terminal_id="T1"
    )
    reported.event_time.FromDatetime(T0 + timedelta(minutes=minutes))
    reported.reported_at.FromDatetime(T0 + timedelta(hours=1))
    return reported


async def forge(js: JetStreamContext, subject: str, message: events.FeatureVectorComputed | events.LabelApplied) -> int:
    """Publishes ``message`` on ``subject`` as a writer that skips the expected-sequence guard."""
    envelope = new_envelope(
        message,
        source="/fraud/forger",
        subject=message.transaction_id,
        event_id=event_id("Forged", f"{subject}.{message.SerializeToString().hex()[:16]}"),
        time=T0,
        schema_version=1,
    )
    headers, body = to_nats(envelope)
    return int((await js.publish(subject, body, headers=headers)).seq)


def conflicts(kind: str) -> float:
    return REGISTRY.get_sample_value("fraud_features_replay_conflicts_total", {"kind": kind}) or 0.0


async def live_features(js: JetStreamContext) -> FeatureState:
    """A live service's state: two transactions and a label of the first, each recorded through the guard."""
    state, log = FeatureState(), feature_log(js)
    await compute_features(request("tx-1", 0), state, log)
    await compute_features(request("tx-2", 5), state, log)
    assert await apply_label(label("tx-1", 0, is_fraud=True), labels_seq=1, state=state, log=log)
    await state.settle()
    return state


async def forge_both(js: JetStreamContext) -> list[int]:
    """A second FeatureVectorComputed of tx-1 (a big amount, later) and a second LabelApplied (not fraud).

    The forged LabelApplied is on the subject of the label the live service applied (LABELS sequence 1): one
    label, two records; a correction would be a new LabelReported with a subject of its own.
    """
    card = subjects.card_key(request("tx-1", 0))
    second = events.FeatureVectorComputed(
        schema_version=1, transaction_id="tx-1", card_token="ct_a", terminal_id="T1", values=[9.0]
    )
    second.amount.CopyFrom(money_pb2.Money(amount_minor=999_999, currency="EUR"))
    second.event_time.FromDatetime(T0 + timedelta(minutes=1))
    relabel = events.LabelApplied(
        schema_version=1, transaction_id="tx-1", card_token="ct_a", terminal_id="T1", is_fraud=False
    )
    relabel.event_time.FromDatetime(T0)
    relabel.reported_at.FromDatetime(T0 + timedelta(hours=2))
    return [
        await forge(js, subjects.feature_vector_computed(card, "tx-1"), second),
        await forge(js, subjects.label_applied(card, "tx-1", 1), relabel),  # the subject of LABELS sequence 1
    ]


async def test_the_features_rebuild_folds_the_first_event_of_a_transaction_and_reports_later_ones(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    live = await live_features(js)
    forged = await forge_both(js)
    before = conflicts("computed"), conflicts("label")
    log = feature_log(js)  # one per process
    rebuilt = await rebuild(log)
    assert rebuilt.engine.to_dict() == live.engine.to_dict()  # neither forgery folded
    assert rebuilt.applied == 3
    assert (conflicts("computed"), conflicts("label")) == (before[0] + 1, before[1] + 1)
    logged = [r.getMessage() for r in caplog.records if "conflicts with" in r.getMessage()]
    assert [f"FEATURES sequence {seq}" in line for seq, line in zip(forged, logged, strict=True)] == [True, True]
    assert (await rebuild(log)).engine.to_dict() == live.engine.to_dict()
    # a second rebuild in the same process (after a voided fold) does not count or log them again
    assert (conflicts("computed"), conflicts("label")) == (before[0] + 1, before[1] + 1)


async def test_a_rebuild_from_a_snapshot_knows_what_the_snapshot_folded(js: JetStreamContext) -> None:
    live = await live_features(js)
    snapshots = OneSnapshot(live.snapshot(ALL))
    forged = await forge_both(js)  # after the snapshot; the records they conflict with are before it
    before = conflicts("computed") + conflicts("label")
    rebuilt = await rebuild(feature_log(js), snapshots, ALL)
    assert rebuilt.applied == 0 and rebuilt.last_seq < forged[0]  # neither forgery folded
    assert rebuilt.engine.to_dict() == live.engine.to_dict()
    assert conflicts("computed") + conflicts("label") == before + 2


async def test_a_transaction_first_recorded_after_the_snapshot_is_folded(js: JetStreamContext) -> None:
    live = await live_features(js)
    snapshots = OneSnapshot(live.snapshot(ALL))
    state, log = FeatureState.from_snapshot(snapshots.snapshot), feature_log(js)
    await compute_features(request("tx-3", 10), state, log)  # after the snapshot: its own first event
    await state.settle()
    rebuilt = await rebuild(log, snapshots, ALL)
    assert rebuilt.applied == 1 and rebuilt.engine.to_dict() == state.engine.to_dict()


def governance(js: JetStreamContext, registry_engine: Engine) -> handlers.Governance:
    registry = RegistryProjection(registry_engine)
    registry.create()
    return handlers.Governance(
        JetStreamModelEvents(EventStore(js), js),
        registry,
        FakeArtifacts(),
        FakeModelServer(),
        fake_validate,
        clock=Clock(),
    )


async def quarantined(js: JetStreamContext) -> list[int]:
    store = EventStore(js)
    found = []
    async for stored in store.read_subject(QUARANTINE_STREAM, "fraud.quarantine.governance.MODELS.>"):
        found.append(stored.envelope.payload(qpb.EventQuarantined).stream_sequence)
    return found


async def unparsable(js: JetStreamContext) -> int:
    """A readable envelope of a model event type whose payload does not parse."""
    registered = register_cmd()
    envelope = new_envelope(
        events.LabelReported(schema_version=1, transaction_id="x"),
        source="/fraud/forger",
        subject=f"{registered.model_name}@9",
        event_id="Forged:unparsable",
        time=T0,
        schema_version=1,
    )
    headers, _ = to_nats(envelope)
    headers["ce-type"] = headers["ce-dataschema"] = "fraud.events.v1.ModelApproved"
    return int((await js.publish(subjects.model_events(NAME), b"\xff\xff\xff", headers=headers)).seq)


async def test_a_bad_event_on_a_models_subject_does_not_fence_its_next_command(
    js: JetStreamContext, tmp_path: Path
) -> None:
    gov = governance(js, make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    await handlers.register_model(gov, register_cmd())
    bad = [int((await js.publish(subjects.model_events(NAME), GARBAGE)).seq), await unparsable(js)]
    first = await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", "risk-officer"))
    assert first.stage is Stage.VALIDATED
    second = await handlers.approve_model(gov, ApproveModel(NAME, "1.0.0", "model-validator"))
    assert second.stage is Stage.APPROVED
    model = await handlers.load_model(gov, NAME)
    assert model.last_seq == await EventStore(js).last_subject_seq("MODELS", subjects.model_events(NAME))
    await handlers.register_model(gov, register_cmd("1.1.0"))  # a new version after them as well
    assert sorted(await quarantined(js)) == bad  # each once, however often the subject was read


async def test_the_registry_position_moves_past_bad_events_at_the_streams_tail(
    js: JetStreamContext,
    engine: Engine,  # noqa: F811 - SQLite and PostgreSQL
) -> None:
    gov = governance(js, engine)
    await handlers.register_model(gov, register_cmd())
    tail = [
        int((await js.publish(subjects.model_events(NAME), GARBAGE)).seq),
        int((await js.publish(subjects.model_events("another-model"), GARBAGE)).seq),
    ]
    assert await projection.catch_up(gov) == tail[-1]
    assert gov.registry.position() == tail[-1]  # recorded: the next catch-up does not read them again
    view = await projection.view(gov, NAME, "1.0.0")
    assert view.stage is Stage.VALIDATED
    rebuilt = RegistryProjection(engine)
    assert await projection.rebuild(gov) >= 2 and rebuilt.position() == tail[-1]
    assert sorted(await quarantined(js)) == tail
