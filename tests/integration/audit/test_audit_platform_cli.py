"""``fraudctl audit verify|prove|timeline`` over the platform's own streams (the ones the notary seals).

These tests share one nats-server; the whole-platform verify counts every event on those streams,
so the timeline test (which adds model events) stays after it in this file.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraud.events.v1 import model_events_pb2
from fraudshared.audit.check import audited_stream_names
from fraudshared.events.envelope import event_id, from_nats, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.nats_server import NatsServer
from services.governance.notary.service import audited_streams
from tests.integration.audit.audit_support import Cli, Governance, decide, seal

pytestmark = pytest.mark.integration


# ---- the platform's own streams: verify all, prove a transaction --------------------------------------------


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
    streams = len(audited_stream_names())
    assert f"verified 36 events in 9 checkpoints over {streams} stream(s); 3 event(s) not yet sealed" in out

    out = await cli("prove", "--transaction", "tx-7")
    assert "proven: 3 event(s) of transaction tx-7" in out
    for kind in ("TransactionReceived:tx-7", "FeatureVectorComputed:tx-7", "PredictionMade:tx-7"):
        assert kind in out
    assert "path[0]" in out and "index 2 of 5" in out

    out = await cli("prove", "--transaction", "tx-late", code=1)
    assert "not sealed yet: TRANSACTIONS is sealed up to sequence 12" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_timeline_lists_who_labelled_what_except_for_one_model(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    from fraud.events.v1 import transaction_events_pb2 as tx_pb

    cli = Cli(server, var_dir)
    at = datetime(2032, 3, 4, 9, 0, tzinfo=UTC)
    tx = f"tl-label-{uuid.uuid4().hex[:8]}"
    label = tx_pb.LabelReported(
        transaction_id=tx,
        is_fraud=True,
        source="case-77",
        principal="user:dev-analyst",
        label_source=tx_pb.LABEL_SOURCE_ANALYST,
        schema_version=2,
    )
    label.reported_at.FromDatetime(at)
    envelope = new_envelope(
        label,
        source="/fraud/ingest",
        subject=tx,
        event_id=event_id("LabelReported", tx),
        time=at,
        schema_version=2,
    )
    await EventStore(js).append(envelope, subject=f"fraud.labels.reported.{tx}")
    window = ["2032-03-04T08:00:00Z", "2032-03-04T10:00:00Z"]
    out = await cli("timeline", "--from", window[0], "--to", window[1], "--json")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["kind"], r["who"]) for r in rows] == [("LabelReported", "user:dev-analyst")]
    assert tx in rows[0]["what"] and "fraud" in rows[0]["what"] and "case-77" in rows[0]["what"]


# ---- timeline: who changed which model, when and why ------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_timeline_merges_model_changes_and_audit_runs_by_event_time(
    server: NatsServer, js: JetStreamContext, var_dir: Path, governance: Governance
) -> None:
    cli = Cli(server, var_dir, governance.address)
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
    assert (recorded.actor, recorded.command, recorded.exit_code) == ("user:dev-auditor", "audit timeline", 0)
    assert recorded.arguments[-1] == "note=carol"  # --actor is a note: the recorded actor is the credential's

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
    assert any(r["who"] == "user:dev-auditor" and "ran `audit timeline" in r["what"] for r in runs)

    assert "is not an ISO 8601 time" in await cli("timeline", "--from", "yesterday", code=2)
    assert "is after --to" in await cli("timeline", "--from", "2031-06-01", "--to", "2031-05-01", code=2)
    assert "unknown model 'nope'" in await cli("timeline", "--model", "nope", code=2)

    junk = await js.publish("fraud.monitor.junk", b"\x00 not an envelope")  # named, and the rest still reads
    out = await cli("timeline", "--model", name, code=1)
    assert "ModelPromoted" in out and f"MONITOR seq {junk.seq} is unreadable" in out
