"""The audit timeline's pure part: stored envelopes -> rows, merged by event time, filtered by window and model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message

from fraud.access.v1 import access_events_pb2 as access_events
from fraud.common.v1 import decision_pb2
from fraud.events.v1 import audit_events_pb2 as audit_events
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import monitor_events_pb2 as monitor_events
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared.audit.timeline import build_timeline, to_entry
from fraudshared.events.envelope import Envelope, new_envelope

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def stored(message: Message, minutes: float, key: str) -> Envelope:
    kind = message.DESCRIPTOR.name
    return new_envelope(
        message,
        source="/fraud/governance",
        subject=key,
        event_id=f"{kind}:{key}",
        time=T0 + timedelta(minutes=minutes),
        schema_version=1,
    )


def lifecycle() -> list[tuple[str, int, Envelope]]:
    """One model's life on MODELS, a remediation on MONITOR, an audit run on AUDIT; stored out of time order."""
    registered = model_events.ModelRegistered(
        schema_version=1,
        model_name="card-gbdt",
        version="1.0.0",
        artifact_sha256="a" * 64,
        dataset_sha256="d" * 64,
        feature_set_version="card-v1",
        registered_by="mia",
        metrics={"auc": 0.912345, "recall_at_1pct": 0.5},
        thresholds=decision_pb2.Thresholds(review=0.3, decline=0.6),
    )
    approved = model_events.ModelApproved(
        schema_version=1, model_name="card-gbdt", version="1.0.0", approver="risk-lead", comment="backtest ok"
    )
    deployed = model_events.ModelDeployed(
        schema_version=1,
        model_name="card-gbdt",
        version="1.0.0",
        role=model_events.DEPLOYMENT_ROLE_CANARY,
        canary_percent=10,
        deployed_by="ops-bob",
    )
    rolled = model_events.ModelRolledBack(
        schema_version=1,
        model_name="card-gbdt",
        from_version="1.0.0",
        to_version="0.9.0",
        rolled_back_by="ops-bob",
        reason="false declines",
    )
    other = model_events.ModelRetired(
        schema_version=1, model_name="other", version="0.1.0", retired_by="mia", reason="superseded"
    )
    proposed = monitor_events.RemediationProposed(
        schema_version=1,
        proposal_id="p-1",
        kind="retrain",
        model_name="card-gbdt",
        version="1.0.0",
        autonomy_level=monitor_events.AUTONOMY_LEVEL_REQUIRE_APPROVAL,
    )
    applied = monitor_events.RemediationApplied(
        schema_version=1, proposal_id="p-1", kind="retrain", applied_by="risk-lead", result="2.0.0 registered"
    )
    run = audit_events.AuditCommandRun(
        schema_version=1, command="audit verify", arguments=["stream=MODELS"], actor="auditor", exit_code=0
    )
    return [
        ("MODELS", 1, stored(registered, 0, "r")),
        ("MODELS", 2, stored(approved, 10, "a")),
        ("MODELS", 3, stored(deployed, 20, "d")),
        ("MODELS", 4, stored(other, 20, "o")),  # same instant as seq 3: sequence breaks the tie
        ("MODELS", 5, stored(rolled, 5, "b")),  # stored later, happened earlier
        ("MONITOR", 1, stored(proposed, 30, "p")),
        ("MONITOR", 2, stored(applied, 40, "x")),
        ("AUDIT", 7, stored(run, 0, "run")),  # same instant as MODELS 1: MODELS first
    ]


def test_rows_are_in_event_time_order_with_ties_by_stream_then_sequence() -> None:
    rows = build_timeline(reversed(lifecycle()))
    assert [(r.stream, r.seq) for r in rows] == [
        ("MODELS", 1),
        ("AUDIT", 7),
        ("MODELS", 5),
        ("MODELS", 2),
        ("MODELS", 3),
        ("MODELS", 4),
        ("MONITOR", 1),
        ("MONITOR", 2),
    ]


def test_each_row_says_who_and_why() -> None:
    rows = {(r.stream, r.seq): r for r in build_timeline(lifecycle())}
    registered = rows["MODELS", 1]
    assert (registered.kind, registered.model, registered.version, registered.who) == (
        "ModelRegistered",
        "card-gbdt",
        "1.0.0",
        "mia",
    )
    assert "dataset dddddddddddd" in registered.what and "feature set card-v1" in registered.what
    assert "thresholds review >= 0.3, decline >= 0.6" in registered.what and "auc=0.9123" in registered.what
    assert (rows["MODELS", 2].who, rows["MODELS", 2].what) == ("risk-lead", "approved: backtest ok")
    assert rows["MODELS", 3].what == "deployed as canary (10% of traffic)"
    assert rows["MODELS", 5].version == "1.0.0 -> 0.9.0"
    assert rows["MODELS", 5].what == "rolled back from 1.0.0 to 0.9.0: false declines"
    assert rows["MONITOR", 1].who == "/fraud/governance"  # no actor field: the producer
    assert "autonomy require_approval" in rows["MONITOR", 1].what
    applied = rows["MONITOR", 2]
    assert (applied.model, applied.version, applied.who) == ("card-gbdt", "1.0.0", "risk-lead")  # from p-1
    run = rows["AUDIT", 7]
    assert (run.kind, run.who, run.model) == ("AuditCommandRun", "auditor", "")
    assert "ran `audit verify` (stream=MODELS)" in run.what and "exit 0" in run.what
    assert run.to_json()["time"] == "2026-11-26T09:00:00.000000Z"


def test_window_is_inclusive_and_model_filter_keeps_its_remediation() -> None:
    rows = build_timeline(lifecycle(), start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=30))
    assert [(r.stream, r.seq) for r in rows] == [("MODELS", 2), ("MODELS", 3), ("MODELS", 4), ("MONITOR", 1)]
    rows = build_timeline(lifecycle(), start=T0 + timedelta(minutes=35), model="card-gbdt")
    assert [(r.stream, r.seq) for r in rows] == [("MONITOR", 2)]  # its proposal is outside the window
    assert {r.model for r in build_timeline(lifecycle(), model="other")} == {"other"}
    assert build_timeline(lifecycle(), end=T0 - timedelta(seconds=1)) == []


def test_a_reversed_or_naive_window_is_refused() -> None:
    with pytest.raises(ValueError, match="is after"):
        build_timeline(lifecycle(), start=T0 + timedelta(hours=1), end=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_timeline(lifecycle(), start=datetime(2026, 1, 1))


def test_an_unknown_or_unreadable_event_still_gets_a_row() -> None:
    prediction = stored(tx_events.PredictionMade(schema_version=1, transaction_id="t1"), 0, "l")
    row = to_entry("MODELS", 9, prediction)
    assert (row.kind, row.who) == ("PredictionMade", "/fraud/governance")
    assert "not interpreted by the timeline" in row.what
    broken = Envelope(
        id="ModelApproved:x",
        source="/x",
        type=model_events.ModelApproved.DESCRIPTOR.full_name,
        subject="x",
        time=T0,
        data=b"\xff\xff\xff",
        schema_version=1,
        dataschema=model_events.ModelApproved.DESCRIPTOR.full_name,
    )
    assert to_entry("MODELS", 10, broken).what.startswith("unreadable ModelApproved payload")


def test_principals_and_role_grants_show_who_could_do_what() -> None:
    approved = model_events.ModelApproved(
        schema_version=1, model_name="card-gbdt", version="2.0.0", approver="user:dev-approver-2", comment="ok"
    )
    granted = access_events.RoleGranted(
        schema_version=1, principal="user:carol", role="approver", granted_by="user:dev-admin", reason="TICKET-7"
    )
    revoked = access_events.RoleRevoked(
        schema_version=1, principal="user:carol", role="approver", granted_by="user:dev-admin", reason="left"
    )
    rows = build_timeline(
        [
            ("ACCESS", 2, stored(revoked, 20, "g")),
            ("MODELS", 9, stored(approved, 10, "a2")),
            ("ACCESS", 1, stored(granted, 10, "g")),  # same instant as MODELS 9: MODELS first
        ]
    )
    assert [(r.stream, r.kind, r.who, r.what) for r in rows] == [
        ("MODELS", "ModelApproved", "user:dev-approver-2", "approved: ok"),
        ("ACCESS", "RoleGranted", "user:dev-admin", "granted role approver to user:carol: TICKET-7"),
        ("ACCESS", "RoleRevoked", "user:dev-admin", "revoked role approver from user:carol: left"),
    ]
    assert build_timeline([("ACCESS", 1, stored(granted, 10, "g"))], model="card-gbdt") == []  # about no model


def test_each_label_shows_its_principal_and_source_kind() -> None:
    chargeback = tx_events.LabelReported(
        schema_version=2,
        transaction_id="t-9",
        is_fraud=True,
        source="CB-2231",
        card_token="ct_secret",
        label_source=tx_events.LABEL_SOURCE_CHARGEBACK,
        principal="user:dev-labeler",
    )
    correction = tx_events.LabelReported(
        schema_version=2,
        transaction_id="t-9",
        is_fraud=False,
        label_source=tx_events.LABEL_SOURCE_CUSTOMER_CONFIRMED,
        principal="service:ingest",
    )
    before_issue_13 = tx_events.LabelReported(schema_version=1, transaction_id="t-8", is_fraud=True, source="crm")
    newer_kind = tx_events.LabelReported(schema_version=2, transaction_id="t-7", principal="user:bob")
    newer_kind.label_source = 9  # a kind added after this reader
    rows = build_timeline(
        [
            ("LABELS", 2, stored(correction, 20, "t-9")),
            ("LABELS", 1, stored(chargeback, 10, "t-9")),
            ("LABELS", 3, stored(before_issue_13, 30, "t-8")),
            ("LABELS", 4, stored(newer_kind, 40, "t-7")),
            ("MODELS", 1, stored(model_events.ModelRetired(model_name="m", version="1"), 10, "m")),
        ]
    )
    assert [(r.stream, r.kind, r.who, r.what) for r in rows] == [
        ("MODELS", "ModelRetired", "?", "retired"),  # same instant as LABELS 1: MODELS first
        ("LABELS", "LabelReported", "user:dev-labeler", "labelled t-9 fraud (source chargeback, ref CB-2231)"),
        ("LABELS", "LabelReported", "service:ingest", "labelled t-9 not fraud (source customer_confirmed)"),
        ("LABELS", "LabelReported", "unknown", "labelled t-8 fraud (source unspecified, ref crm)"),
        ("LABELS", "LabelReported", "user:bob", "labelled t-7 not fraud (source kind 9)"),
    ]
    assert all("ct_secret" not in r.what for r in rows)  # the card token is never shown
    assert build_timeline([("LABELS", 1, stored(chargeback, 10, "t-9"))], model="m") == []  # about no model
