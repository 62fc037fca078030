"""``fraudctl audit replay|explain``: decisions re-derived from the log alone, on a nats-server of its own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2, money_pb2
from fraud.events.v1 import model_events_pb2
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope, to_nats
from fraudshared.events.once import first_message
from fraudshared.events.store import EventStore
from fraudshared.events.streams import ensure_streams
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES, FeatureEngine, Transaction
from fraudshared.nats_server import NatsServer
from services.governance.notary.service import audited_streams
from tests.integration.audit.audit_support import T0, Cli, seal

pytestmark = pytest.mark.integration


# ---- replay: decisions re-derived from the log alone --------------------------------------------------------


@dataclass
class ScoringModel:
    """A small LightGBM over the card-v2 features, as `fraudctl train` exports it (ONNX + explainer)."""

    onnx: bytes
    explainer: bytes
    thresholds: decision_pb2.Thresholds


@pytest.fixture(scope="module")
def scoring_model() -> ScoringModel:
    lightgbm = pytest.importorskip("lightgbm")
    from fraudml.onnx_export import to_onnx

    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 2.0, size=(400, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 3] + rng.normal(size=400) > 9.0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    return ScoringModel(
        to_onnx(model, N_FEATURES),
        model.booster_.model_to_string().encode(),
        decision_pb2.Thresholds(review=0.3, decline=0.6),
    )


def store_artifact(root: Path, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    path = root / "sha256" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return sha


async def record_decisions(
    js: JetStreamContext, model: ScoringModel, artifacts: Path, garbage_at: int | None = None
) -> list[str]:
    """Registers the model, then records features and decisions as the features and scoring services do.

    With `garbage_at`, a message that is no envelope lands on FEATURES before that decision's events.
    """
    import lightgbm as lgb
    import onnxruntime as ort

    from services.scoring.domain.decision import decide, safe_mode_reason, threshold_reasons
    from services.scoring.domain.explanation import reason_codes

    store = EventStore(js)
    onnx_sha, explainer_sha = store_artifact(artifacts, model.onnx), store_artifact(artifacts, model.explainer)
    registered = model_events_pb2.ModelRegistered(
        schema_version=1,
        model_name="replay-gbdt",
        version="1.0.0",
        artifact_sha256=onnx_sha,
        explainer_artifact_sha256=explainer_sha,
        feature_set_version=FEATURE_SET_VERSION,
        feature_names=FEATURE_NAMES,
        thresholds=model.thresholds,
    )
    envelope = new_envelope(
        registered,
        source="/test",
        subject="replay-gbdt",
        event_id=event_id("ModelRegistered", "replay-gbdt-1.0.0"),
        time=T0,
        schema_version=1,
    )
    await store.append(envelope, subject="fraud.models.replay-gbdt")
    session = ort.InferenceSession(model.onnx, providers=["CPUExecutionProvider"])
    explainer = lgb.Booster(model_str=model.explainer.decode())
    ref = decision_pb2.ModelRef(name="replay-gbdt", version="1.0.0", artifact_sha256=onnx_sha)
    engine, rng, ids = FeatureEngine(), np.random.default_rng(3), []
    start = datetime(2027, 3, 1, tzinfo=UTC)
    for n in range(41):
        tx_id, card, terminal = f"rp-{n}", f"rc-{n % 6}", f"rt-{n % 4}"
        moment = start + timedelta(minutes=37 * n)
        amount = int(rng.integers(100, 40000))
        tx = Transaction.create(tx_id, moment, card, terminal, amount)
        values = engine.values_for(tx)
        engine.apply(tx)
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(moment)
        money = money_pb2.Money(amount_minor=amount, currency="EUR")
        received = tx_events.TransactionReceived(
            schema_version=1, transaction_id=tx_id, card_token=card, terminal_id=terminal, amount=money, event_time=when
        )
        computed = tx_events.FeatureVectorComputed(
            schema_version=1,
            transaction_id=tx_id,
            card_token=card,
            feature_set_version=FEATURE_SET_VERSION,
            values=values,
            event_time=when,
            terminal_id=terminal,
            amount=money,
        )
        vector = list(computed.values)  # as recorded: float32
        if n == garbage_at:
            await js.publish("fraud.features.computed.1.rp-junk", b"\x00 not an envelope")
            stray = new_envelope(computed, source="/x", subject="x", event_id="X:x", time=moment, schema_version=1)
            await js.publish("fraud.features.stray", stray.data, headers=to_nats(stray)[0])  # readable, odd subject
        prediction = tx_events.PredictionMade(
            schema_version=1,
            transaction_id=tx_id,
            card_token=card,
            feature_set_version=FEATURE_SET_VERSION,
            feature_values=vector,
            event_time=when,
        )
        if n == 13:  # Triton and the local copy both down: safe-mode rules
            prediction.decision = decision_pb2.DECISION_REVIEW
            prediction.scoring_path = decision_pb2.SCORING_PATH_SAFE_MODE_RULES
            prediction.reason_codes.append(safe_mode_reason("Triton unavailable"))
        else:
            matrix = np.asarray([vector], dtype=np.float32)
            score = float(session.run(None, {"features": matrix})[0].reshape(-1)[0])
            decision = decide(score, model.thresholds)
            prediction.model.CopyFrom(ref)
            prediction.thresholds.CopyFrom(model.thresholds)
            prediction.score, prediction.decision = score, decision
            prediction.scoring_path = decision_pb2.SCORING_PATH_TRITON
            prediction.reason_codes.extend(threshold_reasons(decision, score, model.thresholds))
            if decision != decision_pb2.DECISION_APPROVE:
                contributions = explainer.predict(np.asarray([vector], dtype=np.float64), pred_contrib=True)[0][:-1]
                prediction.reason_codes.extend(reason_codes(FEATURE_NAMES, vector, list(contributions)))
        if n == 40:  # a decision recorded wrongly (a month later, outside the replayed window)
            prediction.event_time.FromDatetime(moment + timedelta(days=45))
            prediction.decision = decision_pb2.DECISION_APPROVE if prediction.score >= 0.3 else 3
        for message, subject in (
            (received, subjects.transaction_received(card, tx_id)),
            (computed, subjects.feature_vector_computed(card, tx_id)),
            (prediction, subjects.prediction_made(card, tx_id)),
        ):
            kind = message.DESCRIPTOR.name
            envelope = new_envelope(
                message, source="/test", subject=tx_id, event_id=event_id(kind, tx_id), time=moment, schema_version=1
            )
            await store.append(envelope, subject=subject, expected_last_subject_seq=0)
        ids.append(tx_id)
    return ids


@pytest.mark.asyncio(loop_scope="session")
async def test_replay_rederives_every_decision_names_a_wrong_one_and_explain_shows_it(
    tmp_path_factory: pytest.TempPathFactory, scoring_model: ScoringModel
) -> None:
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("replay")
    with NatsServer(root / "nats") as srv:
        nc = await nats.connect(srv.url)
        try:
            rjs = nc.jetstream(timeout=5.0)
            await ensure_streams(rjs)
            await record_decisions(rjs, scoring_model, root / "artifacts")
        finally:
            await nc.close()
        cli = Cli(srv, root / "var")
        artifacts = ("--artifact-dir", str(root / "artifacts"))

        out = await cli("replay", "--from", "2027-03-01T00:00:00Z", "--to", "2027-03-31", *artifacts)
        assert "replayed 40 decision(s): 40 match, 0 mismatch" in out
        out = await cli("replay", "--transaction", "rp-7", *artifacts)
        assert "replayed 1 decision(s): 1 match" in out and "replay-gbdt 1.0.0" in out

        out = await cli("replay", "--transaction", "rp-40", *artifacts, code=1)
        assert "rp-40: decision" in out and "replayed" in out and "recorded" in out

        out = await cli("explain", "--transaction", "rp-13")
        assert "safe_mode_rules" in out and "SAFE_MODE" in out and "card_tx_count_30d" in out
        out = await cli("explain", "--transaction", "rp-30")
        assert "replay-gbdt 1.0.0" in out and "MODEL_SCORE_AT_DECLINE_THRESHOLD" in out and "card-v2" in out
        assert "unknown transaction 'nope'" in await cli("explain", "--transaction", "nope", code=2)

        assert "unknown transaction 'nope'" in await cli("replay", "--transaction", "nope", *artifacts, code=2)
        assert "give --transaction, or --from and --to" in await cli("replay", *artifacts, code=2)
        out = await cli("replay", "--from", "2030-01-01", "--to", "2030-02-01", *artifacts, code=2)
        assert "no decision was recorded" in out
        out = await cli("replay", "--transaction", "rp-7", "--artifact-dir", str(root / "empty"), code=3)
        assert "is not in" in out


# ---- the first event is the record: a forged second decision, unreadable events -------------------------------


async def forge(js: JetStreamContext, artifacts: Path) -> tuple[int, int]:
    """A second PredictionMade of rp-7 without the expected-sequence header, and garbage on two streams.

    Returns:
        The stream sequences of the recorded (first) and the forged decision of rp-7.
    """
    subject = subjects.prediction_made_any("rp-7")
    first = await first_message(js, "PREDICTIONS", subject)
    assert first is not None
    forged = first.payload(tx_events.PredictionMade)
    forged.decision, forged.score = decision_pb2.DECISION_APPROVE, 0.0123
    envelope = new_envelope(
        forged, source="/forger", subject="rp-7", event_id=event_id("Forged", "rp-7"), time=T0, schema_version=1
    )
    appended = await EventStore(js).append(envelope, subject=first.subject)
    for garbage_on in ("fraud.predictions.made.1.rp-junk", "fraud.models.junk"):
        await js.publish(garbage_on, b"\x00 not an envelope")
    return first.seq, appended.seq


@pytest.mark.asyncio(loop_scope="session")
async def test_a_forged_second_decision_is_a_conflict_and_unreadable_events_are_named_not_raised(
    tmp_path_factory: pytest.TempPathFactory, scoring_model: ScoringModel
) -> None:
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("forged")
    with NatsServer(root / "nats") as srv:
        nc = await nats.connect(srv.url)
        try:
            fjs = nc.jetstream(timeout=5.0)
            await ensure_streams(fjs)
            await record_decisions(fjs, scoring_model, root / "artifacts", garbage_at=20)
            record_seq, forged_seq = await forge(fjs, root / "artifacts")
            await seal(fjs, root / "var", audited_streams(), every_n=10)
        finally:
            await nc.close()
        cli = Cli(srv, root / "var")
        artifacts = ("--artifact-dir", str(root / "artifacts"))
        conflict = f"PREDICTIONS seq {forged_seq}: a second event on fraud.predictions.made."
        record = f"conflicts with the record (seq {record_seq})"

        out = await cli("replay", "--transaction", "rp-7", *artifacts, code=1)
        assert "replayed 1 decision(s): 1 match, 0 mismatch" in out and conflict in out and record in out
        out = await cli("replay", "--from", "2027-03-01T00:00:00Z", "--to", "2027-03-31", *artifacts, code=1)
        assert "replayed 40 decision(s): 40 match, 0 mismatch" in out and conflict in out
        assert "is on 'fraud.features.stray', not a transaction's subject" in out
        for stream in ("PREDICTIONS", "FEATURES", "MODELS"):
            assert f"{stream} seq" in out and "is unreadable" in out.split(f"{stream} seq", 1)[1].split("\n", 1)[0]

        out = await cli("explain", "--transaction", "rp-7", code=1)
        assert f"PREDICTIONS seq {record_seq})" in out and "0.0123" not in out and conflict in out

        out = await cli("prove", "--transaction", "rp-7", code=1)
        assert f"PREDICTIONS seq {record_seq}" in out and f"PREDICTIONS seq {forged_seq}:" in out
        assert "NOT PROVEN: 1 of 3 event(s) of rp-7;" in out and out.count("proven") >= 2
