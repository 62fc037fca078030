"""The FEATURES stream's events as the engine folds them (shared by the features service and audit replay).

The stream holds FeatureVectorComputed (a transaction, with the vector computed before it was folded) and
LabelApplied (a delayed label, at the point the owner folded it). Folding both in stream order rebuilds the
state the live service had at every point, which is what makes a recorded vector re-derivable.
"""

from __future__ import annotations

from typing import TypeAlias

from fraud.common.v1 import geo_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared.events.envelope import Envelope
from fraudshared.features.definition import Label, Transaction, to_microdegrees
from fraudshared.features.engine import FeatureEngine
from fraudshared.subjects import card_key

COMPUTED_TYPE = events.FeatureVectorComputed.DESCRIPTOR.full_name
LABEL_TYPE = events.LabelApplied.DESCRIPTOR.full_name
Recorded: TypeAlias = events.FeatureVectorComputed | events.LabelApplied


def location_of(message: events.FeatureVectorComputed | events.TransactionReceived) -> tuple[int, int] | None:
    """The terminal location of a message with a `terminal_location` field, in microdegrees, if set."""
    if not message.HasField("terminal_location"):
        return None
    point: geo_pb2.GeoPoint = message.terminal_location
    return to_microdegrees(point.latitude), to_microdegrees(point.longitude)


def transaction_of(event: events.FeatureVectorComputed) -> Transaction:
    return Transaction(
        tx_id=event.transaction_id,
        event_time_us=event.event_time.ToMicroseconds(),
        card_token=card_key(event),
        terminal_id=event.terminal_id,
        amount_minor=event.amount.amount_minor,
        location=location_of(event),
    )


def label_of(event: events.LabelApplied) -> Label:
    return Label(
        tx_id=event.transaction_id,
        terminal_id=event.terminal_id,
        tx_time_us=event.event_time.ToMicroseconds(),
        is_fraud=event.is_fraud,
        reported_us=event.reported_at.ToMicroseconds(),
        card_token=card_key(event),
    )


def fold(engine: FeatureEngine, event: Recorded) -> None:
    """Apply one recorded event to the engine."""
    if isinstance(event, events.LabelApplied):
        engine.apply_label(label_of(event))
    else:
        engine.apply(transaction_of(event))


def parse(envelope: Envelope) -> Recorded | None:
    """The recorded event an envelope of the FEATURES stream holds (None for a type the engine ignores)."""
    if envelope.type == COMPUTED_TYPE:
        return envelope.payload(events.FeatureVectorComputed)
    if envelope.type == LABEL_TYPE:
        return envelope.payload(events.LabelApplied)
    return None
