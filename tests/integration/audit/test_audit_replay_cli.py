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
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.events.streams import ensure_streams
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES, FeatureEngine, Transaction
from fraudshared.nats_server import NatsServer
from tests.integration.audit.audit_support import T0, Cli

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


async def record_decisions(js: JetStreamContext, model: ScoringModel, artifacts: Path) -> list[str]:
    """Registers the model, then records features and decisions as the features and scoring services do."""
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
