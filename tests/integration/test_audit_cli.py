"""``fraudctl audit verify|prove`` against a nats-server of its own, whose file store the tests tamper with."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import numpy as np
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2
from nats.js import JetStreamContext
from typer.testing import CliRunner

from fraud.common.v1 import decision_pb2, money_pb2
from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraud.events.v1 import model_events_pb2
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudctl.cli import app
from fraudshared import subjects
from fraudshared.audit.keys import SIGNING_SECRET_KEY, SIGNING_SECRET_PATH, load_signing_key
from fraudshared.events.envelope import event_id, from_nats, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.events.streams import StreamSpec, ensure_streams
from fraudshared.features import FEATURE_NAMES, FEATURE_SET_VERSION, N_FEATURES, FeatureEngine, Transaction
from fraudshared.nats_server import NatsServer
from fraudshared.secrets import DevSecretStore
from services.governance.notary.adapters.log import JetStreamNotaryLog
from services.governance.notary.adapters.signing import SecretsSigningKeys
from services.governance.notary.service import Notary, NotaryConfig, audited_streams

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HBIT = 1 << 31  # JetStream file store: the record length's high bit says "has headers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    srv = NatsServer(tmp_path_factory.mktemp("audit-nats") / "store")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-var")


@pytest_asyncio.fixture(loop_scope="session")
async def js(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        context = nc.jetstream(timeout=5.0)
        await ensure_streams(context)
        yield context
    finally:
        await nc.close()


async def new_stream(js: JetStreamContext) -> StreamSpec:
    suffix = uuid.uuid4().hex[:10]
    spec = StreamSpec(name=f"TAMPER_{suffix.upper()}", subjects=(f"tamper.{suffix}.>",), description="tamper test")
    await ensure_streams(js, [spec])
    return spec


async def append_labels(js: JetStreamContext, spec: StreamSpec, first: int, last: int, changed: int = 0) -> None:
    prefix = spec.subjects[0].removesuffix(">")
    for n in range(first, last + 1):
        message = tx_events.LabelReported(schema_version=1, transaction_id=f"MARK{n:06d}", is_fraud=n == changed)
        envelope = new_envelope(
            message,
            source="/test",
            subject=f"tx-{n}",
            event_id=event_id("LabelReported", f"{spec.name}-{n}"),
            time=T0 + timedelta(seconds=n),
            schema_version=1,
        )
        await EventStore(js).append(envelope, subject=f"{prefix}{n}")


async def seal(js: JetStreamContext, var_dir: Path, streams: list[tuple[str, str]], every_n: int = 10) -> None:
    """Runs a notary until every stream is sealed up to its end."""
    secrets = DevSecretStore(var_dir / "secrets.dev.json")
    notary = Notary(
        JetStreamNotaryLog(js, EventStore(js)),
        SecretsSigningKeys(secrets),
        streams,
        NotaryConfig(every_n=every_n, every_s=0.1),
    )
    ends = {name: (await js.stream_info(name)).state.last_seq for name, _ in streams}
    stop = asyncio.Event()
    task = asyncio.create_task(notary.run(stop))
    try:
        async with asyncio.timeout(15):
            while any(notary.sealed_up_to.get(name, -1) < end for name, end in ends.items()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polls the notary's progress
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class Cli:
    def __init__(self, server: NatsServer, var_dir: Path) -> None:
        self.server, self.var_dir = server, var_dir

    async def __call__(self, *args: str, code: int = 0, nats_url: str | None = None) -> str:
        argv = ["audit", *args, "--nats", nats_url or self.server.url, "--var-dir", str(self.var_dir)]
        result = await asyncio.to_thread(CliRunner().invoke, app, argv, env={"COLUMNS": "220", "USER": "auditor"})
        output = result.stdout + result.stderr
        assert result.exit_code == code, (argv, output, result.exception)
        assert "Traceback" not in output
        return output


def restart_with(server: NatsServer, stream: str, edit: Callable[[Path], None]) -> None:
    """Stops the server, lets ``edit`` change the stream's message directory, starts it again."""
    server.stop()
    msgs = server.store_dir / "jetstream" / "$G" / "streams" / stream / "msgs"
    edit(msgs)
    server.start()


def records(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset, length, sequence) of each message record in a .blk file."""
    offset = 0
    while offset + 22 <= len(data):
        length, seq = struct.unpack_from("<IQ", data, offset)
        length &= ~HBIT
        if length == 0:
            return
        yield offset, length, seq
        offset += length


async def reconnect(js: JetStreamContext) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                await js.account_info()
                return
            except Exception:
                await asyncio.sleep(0.1)


# ---- a clean log, tampering, bad input -------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_clean_verify_is_recorded_and_a_flipped_byte_is_named(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 25)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])
    await append_labels(js, spec, 26, 27)  # after the last checkpoint

    out = await cli("verify", "--stream", spec.name, "--actor", "alice")
    assert "verified 25 events in 3 checkpoints over 1 stream(s); 2 event(s) not yet sealed" in out
    run = from_nats(*(lambda m: (m.headers, m.data))(await js.get_last_msg("AUDIT", "fraud.audit.commands.verify")))
    recorded = run.payload(audit_pb.AuditCommandRun)
    assert (recorded.actor, recorded.command, recorded.exit_code) == ("alice", "audit verify", 0)
    assert f"stream={spec.name}" in recorded.arguments

    def flip(msgs: Path) -> None:
        blk = next(msgs.glob("*.blk"))
        data = bytearray(blk.read_bytes())
        data[data.index(b"MARK000007") + 5] ^= 0x01
        blk.write_bytes(bytes(data))

    restart_with(server, spec.name, flip)
    await reconnect(js)
    out = await cli("verify", "--stream", spec.name, code=1)
    assert f"{spec.name} seq 7: missing or unreadable (sealed in checkpoint {spec.name}[1..10])" in out
    assert "NOT VERIFIED" in out
    out = await cli("verify", "--stream", spec.name, "--from", "11", "--to", "25")  # the other ranges still verify
    assert "verified 15 events in 2 checkpoints" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_a_removed_message_and_a_truncated_stream_are_named(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 20)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])

    def remove(seqs: set[int]) -> Callable[[Path], None]:
        def edit(msgs: Path) -> None:
            blk = next(msgs.glob("*.blk"))
            data = bytearray(blk.read_bytes())
            for offset, length, seq in sorted(records(bytes(data)), reverse=True):
                if seq in seqs:
                    del data[offset : offset + length]
            blk.write_bytes(bytes(data))
            (msgs / "index.db").unlink(missing_ok=True)  # make the server rebuild its index from the blocks

        return edit

    restart_with(server, spec.name, remove({13, 20}))
    await reconnect(js)
    out = await cli("verify", "--stream", spec.name, code=1)
    assert f"{spec.name} seq 13: missing or unreadable (sealed in checkpoint {spec.name}[11..20])" in out
    assert f"{spec.name} seq 19: the stream ends at 19 but checkpoints seal up to 20" not in out  # seq 20 is named
    assert f"{spec.name} seq 20:" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_a_rewritten_stream_names_the_altered_event(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 12)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])
    # Deleting a whole stream is the one rewrite JetStream allows an operator: recreate it with one change.
    await js.delete_stream(spec.name)
    await ensure_streams(js, [spec])
    await append_labels(js, spec, 1, 12, changed=4)

    out = await cli("verify", "--stream", spec.name, code=1)
    assert (
        f"{spec.name} seq 4: event hash" in out
        and f"differs from the one sealed in checkpoint {spec.name}[1..10]" in out
    )
    assert "seq 5" not in out


@pytest.mark.asyncio(loop_scope="session")
async def test_keys_wrong_and_rotated(server: NatsServer, js: JetStreamContext, tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    streams = [(spec.name, spec.subjects[0])]
    await append_labels(js, spec, 1, 10)
    await seal(js, var_dir, streams)
    secrets = DevSecretStore(var_dir / "secrets.dev.json")
    old = load_signing_key(secrets)
    secrets.put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "ab" * 32})  # rotation: version 2
    await append_labels(js, spec, 11, 20)
    await seal(js, var_dir, streams)

    out = await cli("verify", "--stream", spec.name)  # both versions come from the secrets store
    assert "verified 20 events in 2 checkpoints" in out and f"{old.key_id} (v1)" in out

    out = await cli("verify", "--stream", spec.name, "--public-key", old.public_key.hex(), code=1)
    new = load_signing_key(secrets)
    assert f"checkpoint {spec.name}[11..20]: signed with key {new.key_id} (version 2), which is not among" in out
    out = await cli("verify", "--stream", spec.name, "--public-key", "12" * 32, code=1)
    assert f"signed with key {old.key_id} (version 1)" in out

    other = tmp_path / "other-var"  # a store whose key never signed anything
    out = await Cli(server, other)("verify", "--stream", spec.name, code=1)
    assert "not among the verifying keys" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_input_is_one_line_and_a_non_zero_exit(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 5)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])], every_n=5)
    await append_labels(js, spec, 6, 6)

    assert "there is no stream 'NOPE'" in await cli("verify", "--stream", "NOPE", code=2)
    out = await cli("verify", "--stream", spec.name, "--from", "3", "--to", "99", code=2)
    assert f"range 3..99 does not exist in {spec.name} (sequences 1..6)" in out
    assert "--from/--to need --stream" in await cli("verify", "--from", "1", code=2)
    out = await cli("verify", "--stream", spec.name, "--from", "5", "--to", "6", code=1)
    assert "sequences 6..6 are not sealed by any checkpoint yet" in out
    assert "unknown transaction 'tx-nope'" in await cli("prove", "--transaction", "tx-nope", code=2)
    assert "is not a transaction id" in await cli("prove", "--transaction", "a.b", code=2)
    assert "cannot connect to NATS" in await cli("verify", code=3, nats_url="nats://127.0.0.1:1")
    broken = var_dir / "broken"
    DevSecretStore(broken / "secrets.dev.json").put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "not-hex"})
    out = await Cli(server, broken)("verify", "--stream", spec.name, code=3)
    assert "cannot read the verifying keys" in out and "is not the hex of a 32-byte seed" in out


# ---- the platform's own streams: verify all, prove a transaction --------------------------------------------


async def decide(js: JetStreamContext, transaction_id: str, card: str) -> None:
    """The three events of one decision, on the subjects ingest, features and scoring use."""
    store = EventStore(js)
    amount = money_pb2.Money(amount_minor=1250, currency="EUR")
    when = T0
    received = tx_events.TransactionReceived(
        schema_version=1, transaction_id=transaction_id, card_token=card, terminal_id="T1", amount=amount
    )
    features = tx_events.FeatureVectorComputed(
        schema_version=1, transaction_id=transaction_id, card_token=card, values=[1.0, 2.5], feature_set_version="v1"
    )
    prediction = tx_events.PredictionMade(
        schema_version=1,
        transaction_id=transaction_id,
        card_token=card,
        score=0.12,
        decision=decision_pb2.DECISION_APPROVE,
    )
    for message, subject in (
        (received, subjects.transaction_received(card, transaction_id)),
        (features, subjects.feature_vector_computed(card, transaction_id)),
        (prediction, subjects.prediction_made(card, transaction_id)),
    ):
        kind = message.DESCRIPTOR.name
        envelope = new_envelope(
            message,
            source="/test",
            subject=transaction_id,
            event_id=event_id(kind, transaction_id),
            time=when,
            schema_version=1,
        )
        await store.append(envelope, subject=subject, expected_last_subject_seq=0)


@pytest.mark.asyncio(loop_scope="session")
async def test_verify_all_streams_and_prove_a_transaction(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    for n in range(12):
        await decide(js, f"tx-{n}", f"card-{n % 5}")
    await seal(js, var_dir, audited_streams(), every_n=5)
    await decide(js, "tx-late", "card-1")

    out = await cli("verify")
    assert "verified 36 events in 9 checkpoints over 6 stream(s); 3 event(s) not yet sealed" in out

    out = await cli("prove", "--transaction", "tx-7")
    assert "proven: 3 event(s) of transaction tx-7" in out
    for kind in ("TransactionReceived:tx-7", "FeatureVectorComputed:tx-7", "PredictionMade:tx-7"):
        assert kind in out
    assert "path[0]" in out and "index 2 of 5" in out

    out = await cli("prove", "--transaction", "tx-late", code=1)
    assert "not sealed yet: TRANSACTIONS is sealed up to sequence 12" in out


# ---- replay: decisions re-derived from the log alone --------------------------------------------------------


@dataclass
class ScoringModel:
    """A small LightGBM over the card-v1 features, as `fraudctl train` exports it (ONNX + explainer)."""

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
        assert "replay-gbdt 1.0.0" in out and "MODEL_SCORE_AT_DECLINE_THRESHOLD" in out and "card-v1" in out
        assert "unknown transaction 'nope'" in await cli("explain", "--transaction", "nope", code=2)

        assert "unknown transaction 'nope'" in await cli("replay", "--transaction", "nope", *artifacts, code=2)
        assert "give --transaction, or --from and --to" in await cli("replay", *artifacts, code=2)
        out = await cli("replay", "--from", "2030-01-01", "--to", "2030-02-01", *artifacts, code=2)
        assert "no decision was recorded" in out
        out = await cli("replay", "--transaction", "rp-7", "--artifact-dir", str(root / "empty"), code=3)
        assert "is not in" in out


# ---- timeline: who changed which model, when and why ------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_timeline_merges_model_changes_and_audit_runs_by_event_time(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    name, t = f"tl-{uuid.uuid4().hex[:8]}", datetime(2031, 5, 1, 8, 0, tzinfo=UTC)
    thresholds = decision_pb2.Thresholds(review=0.25, decline=0.7)
    changes = [  # appended in this order; the validation happened before the approval
        (
            model_events_pb2.ModelRegistered(
                model_name=name, version="1.0.0", registered_by="mia", thresholds=thresholds, dataset_sha256="d" * 64
            ),
            0,
        ),
        (model_events_pb2.ModelApproved(model_name=name, version="1.0.0", approver="risk-lead", comment="ok"), 60),
        (
            model_events_pb2.ModelDeployed(
                model_name=name,
                version="1.0.0",
                deployed_by="ops-bob",
                canary_percent=5,
                role=model_events_pb2.DEPLOYMENT_ROLE_CANARY,
            ),
            120,
        ),
        (
            model_events_pb2.ModelPromoted(model_name=name, version="1.0.0", promoted_by="ops-bob", reason="canary ok"),
            180,
        ),
        (model_events_pb2.ModelValidated(model_name=name, version="1.0.0", checks={"auc": "pass"}), 30),
    ]
    for n, (message, minutes) in enumerate(changes):
        message.schema_version = 1
        envelope = new_envelope(
            message,
            source="/fraud/governance",
            subject=name,
            event_id=event_id(message.DESCRIPTOR.name, f"{name}-{n}"),
            time=t + timedelta(minutes=minutes),
            schema_version=1,
        )
        await EventStore(js).append(envelope, subject=f"fraud.models.{name}")

    out = await cli("timeline", "--model", name, "--json", "--actor", "carol")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    kinds = ["ModelRegistered", "ModelValidated", "ModelApproved", "ModelDeployed", "ModelPromoted"]
    assert [r["kind"] for r in rows] == kinds
    assert [r["who"] for r in rows] == ["mia", "/fraud/governance", "risk-lead", "ops-bob", "ops-bob"]
    assert rows[1]["seq"] == max(r["seq"] for r in rows)  # stored last, listed by its event time
    assert rows[0]["time"] == "2031-05-01T08:00:00.000000Z" and rows[0]["version"] == "1.0.0"
    assert "thresholds review >= 0.25, decline >= 0.7" in rows[0]["what"]
    assert rows[2]["what"] == "approved: ok" and rows[3]["what"] == "deployed as canary (5% of traffic)"
    assert rows[4]["what"] == "promoted to champion: canary ok"
    run = from_nats(*(lambda m: (m.headers, m.data))(await js.get_last_msg("AUDIT", "fraud.audit.commands.timeline")))
    recorded = run.payload(audit_pb.AuditCommandRun)
    assert (recorded.actor, recorded.command, recorded.exit_code) == ("carol", "audit timeline", 0)

    out = await cli("timeline", "--from", "2031-05-01T08:30:00Z", "--to", "2031-05-01T10:00:00+00:00")
    assert "audit timeline" in out and "3 event(s)" in out
    assert "ModelValidated" in out and "ModelDeployed" in out
    assert "ModelRegistered" not in out and "ModelPromoted" not in out  # 08:00 and 11:00: outside the range
    assert "risk-lead" in out and "MODELS#" in out and f"{name} 1.0.0" in out
    assert out.index("ModelValidated") < out.index("ModelApproved") < out.index("ModelDeployed")

    now = datetime.now(UTC)
    window = [(now - timedelta(minutes=5)).isoformat(), (now + timedelta(minutes=5)).isoformat()]
    out = await cli("timeline", "--from", window[0], "--to", window[1], "--json")  # today: only the audit runs
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert runs and {r["kind"] for r in runs} == {"AuditCommandRun"}
    assert any(r["who"] == "carol" and "ran `audit timeline" in r["what"] for r in runs)

    assert "is not an ISO 8601 time" in await cli("timeline", "--from", "yesterday", code=2)
    assert "is after --to" in await cli("timeline", "--from", "2031-06-01", "--to", "2031-05-01", code=2)
    assert "unknown model 'nope'" in await cli("timeline", "--model", "nope", code=2)
