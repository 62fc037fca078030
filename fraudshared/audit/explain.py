"""Everything the log says about one decision (``fraudctl audit explain``): the events, and the model's lineage.

Read from the streams alone: TransactionReceived, FeatureVectorComputed and PredictionMade of the
transaction (the first event on each subject is the record; later ones are listed as conflicts), and the
MODELS events of the version that decided it (registration with lineage, approvals, deployments). An event
that cannot be read is named in `findings`, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message
from nats.js import JetStreamContext

from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.audit.check import recorded_decision
from fraudshared.audit.records import read_record
from fraudshared.events.envelope import EnvelopeError
from fraudshared.events.store import EventStore, UnreadableEvent


@dataclass
class Explanation:
    """A decision with its inputs and the lineage of the model version that made it."""

    prediction: tx_events.PredictionMade
    prediction_seq: int
    transaction: tx_events.TransactionReceived | None = None
    features: tx_events.FeatureVectorComputed | None = None
    registered: model_events.ModelRegistered | None = None
    approvals: list[model_events.ModelApproved] = field(default_factory=list)
    deployments: list[model_events.ModelDeployed] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # conflicts and unreadable events, one line each


async def explain_transaction(js: JetStreamContext, transaction_id: str) -> Explanation:
    """Collects the decision of ``transaction_id`` and its model's lineage.

    Raises:
        AuditInputError: If the id is malformed or no decision of it is recorded.
        AuditReadError: If the recorded decision cannot be read (its stream and sequence are named).
    """
    decided = await recorded_decision(js, transaction_id)
    assert decided.event is not None  # recorded_decision raises otherwise
    explanation = Explanation(decided.event, decided.seq, findings=decided.findings())
    received = await read_record(
        js, "TRANSACTIONS", subjects.transaction_received_any(transaction_id), tx_events.TransactionReceived
    )
    computed = await read_record(
        js, "FEATURES", subjects.feature_vector_computed_any(transaction_id), tx_events.FeatureVectorComputed
    )
    explanation.transaction, explanation.features = received.event, computed.event
    explanation.findings += received.findings() + computed.findings()
    ref = explanation.prediction.model
    if ref.name:
        await _lineage(js, explanation, ref.name, ref.version)
    return explanation


async def _lineage(js: JetStreamContext, explanation: Explanation, name: str, version: str) -> None:
    kinds: dict[str, type[Message]] = {
        m.DESCRIPTOR.full_name: m
        for m in (model_events.ModelRegistered, model_events.ModelApproved, model_events.ModelDeployed)
    }

    def unreadable(event: UnreadableEvent) -> None:
        explanation.findings.append(f"MODELS seq {event.seq} is unreadable: {event.error}")

    async for stored in EventStore(js).read_subject("MODELS", subjects.model_events(name), on_unreadable=unreadable):
        kind = kinds.get(stored.envelope.type)
        if kind is None:
            continue
        try:
            event = stored.envelope.payload(kind)
        except (EnvelopeError, DecodeError) as exc:
            explanation.findings.append(f"MODELS seq {stored.seq} is unreadable: {exc or type(exc).__name__}")
            continue
        if getattr(event, "version", None) != version:
            continue
        if isinstance(event, model_events.ModelRegistered):
            explanation.registered = event
        elif isinstance(event, model_events.ModelApproved):
            explanation.approvals.append(event)
        elif isinstance(event, model_events.ModelDeployed):
            explanation.deployments.append(event)
