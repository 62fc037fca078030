"""Everything the log says about one decision (``fraudctl audit explain``): the events, and the model's lineage.

Read from the streams alone: TransactionReceived, FeatureVectorComputed and PredictionMade of the
transaction, and the MODELS events of the version that decided it (registration with lineage, approvals,
deployments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.audit.check import AuditInputError
from fraudshared.events.envelope import from_nats
from fraudshared.events.store import EventStore

M = TypeVar("M", bound=Message)
_TX_ID_RE = re.compile(r"[A-Za-z0-9_\-]+")


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


async def _last(js: JetStreamContext, stream: str, subject: str, message_type: type[M]) -> tuple[M, int] | None:
    try:
        raw = await js.get_last_msg(stream, subject)
    except NotFoundError:
        return None
    return from_nats(raw.headers, raw.data).payload(message_type), int(raw.seq or 0)


async def explain_transaction(js: JetStreamContext, transaction_id: str) -> Explanation:
    """Collects the decision of ``transaction_id`` and its model's lineage.

    Raises:
        AuditInputError: If the id is malformed or no decision of it is recorded.
    """
    if not _TX_ID_RE.fullmatch(transaction_id):
        raise AuditInputError(f"{transaction_id!r} is not a transaction id (letters, digits, '-' and '_')")
    found = await _last(js, "PREDICTIONS", f"fraud.predictions.made.*.{transaction_id}", tx_events.PredictionMade)
    if found is None:
        raise AuditInputError(f"unknown transaction {transaction_id!r}: no PredictionMade is recorded")
    explanation = Explanation(*found)
    received = await _last(js, "TRANSACTIONS", f"fraud.tx.received.*.{transaction_id}", tx_events.TransactionReceived)
    computed = await _last(
        js, "FEATURES", f"fraud.features.computed.*.{transaction_id}", tx_events.FeatureVectorComputed
    )
    explanation.transaction = received[0] if received else None
    explanation.features = computed[0] if computed else None
    ref = explanation.prediction.model
    if ref.name:
        await _lineage(js, explanation, ref.name, ref.version)
    return explanation


async def _lineage(js: JetStreamContext, explanation: Explanation, name: str, version: str) -> None:
    kinds: dict[str, type[Message]] = {
        m.DESCRIPTOR.full_name: m
        for m in (model_events.ModelRegistered, model_events.ModelApproved, model_events.ModelDeployed)
    }
    async for stored in EventStore(js).read_subject("MODELS", subjects.model_events(name)):
        kind = kinds.get(stored.envelope.type)
        if kind is None:
            continue
        event = stored.envelope.payload(kind)
        if getattr(event, "version", None) != version:
            continue
        if isinstance(event, model_events.ModelRegistered):
            explanation.registered = event
        elif isinstance(event, model_events.ModelApproved):
            explanation.approvals.append(event)
        elif isinstance(event, model_events.ModelDeployed):
            explanation.deployments.append(event)
