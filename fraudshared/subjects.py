"""Subject names on the event log: the one place that says where each event is appended.

Transaction-scoped events live on a subject per transaction inside a partition token, so that
- an append with expected last subject sequence 0 is a permanent duplicate guard (not only within the
  JetStream duplicate window); checked on `fraud.tx.received.*.<id>`, it claims a transaction id once across
  all partitions, and
- a features instance can own a partition (`fraud.tx.received.<p>.*`) and apply each card's events in order.
The partition is a stable hash of the card key (`card_key`: the card's random subject id, or the card token
of events written before erasure support), never of the PAN.
"""

from __future__ import annotations

import hashlib
from typing import Any

DEFAULT_PARTITIONS = 8


def card_key(message: Any) -> str:
    """The key a card's events and state live under: its subject id, or the card token of older events."""
    return str(message.subject_id or message.card_token)


def partition_of(card_token: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """Stable partition number of a card token (same on every process and platform)."""
    digest = hashlib.blake2b(card_token.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def transaction_received(card_token: str, transaction_id: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    return f"fraud.tx.received.{partition_of(card_token, partitions)}.{transaction_id}"


def feature_vector_computed(card_token: str, transaction_id: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    return f"fraud.features.computed.{partition_of(card_token, partitions)}.{transaction_id}"


def label_applied(card_token: str, transaction_id: str, labels_seq: int, partitions: int = DEFAULT_PARTITIONS) -> str:
    """Where a features owner records the point at which it folded a label that took effect.

    One subject per label (a transaction may have corrections): ``labels_seq`` is the LABELS stream sequence of
    the LabelReported, the last token. Events written before corrections are on ``<transaction id>`` alone; one
    there after any label of its transaction is a conflict for every reader (features' rebuild, audit replay).
    """
    return f"fraud.features.label.{partition_of(card_token, partitions)}.{transaction_id}.{labels_seq}"


def prediction_made(card_token: str, transaction_id: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    return f"fraud.predictions.made.{partition_of(card_token, partitions)}.{transaction_id}"


def shadow_scored(
    card_token: str, transaction_id: str, model_version: str, partitions: int = DEFAULT_PARTITIONS
) -> str:
    """A shadow model's score of a transaction (one per transaction and shadow version)."""
    version = model_version.replace(".", "-")
    return f"fraud.predictions.shadow.{partition_of(card_token, partitions)}.{transaction_id}.{version}"


def label_reported(transaction_id: str) -> str:
    return f"fraud.labels.reported.{transaction_id}"


# A transaction's events on whichever partition holds them. TransactionReceived is appended with its expected
# last sequence checked on this filter, which claims the id once across all partitions (docs/events.md).
def transaction_received_any(transaction_id: str) -> str:
    return f"fraud.tx.received.*.{transaction_id}"


def feature_vector_computed_any(transaction_id: str) -> str:
    return f"fraud.features.computed.*.{transaction_id}"


def prediction_made_any(transaction_id: str) -> str:
    return f"fraud.predictions.made.*.{transaction_id}"


def model_events(model_name: str) -> str:
    """All lifecycle events of one model share a subject: appends carry its expected last sequence."""
    return f"fraud.models.{model_name}"


PREDICTIONS_MADE_ALL = "fraud.predictions.made.>"
FEATURES_ALL = "fraud.features.>"  # FeatureVectorComputed and LabelApplied; the partition is token 3 of both
MODELS_ALL = "fraud.models.>"
LABELS_ALL = "fraud.labels.>"
PRIVACY_ALL = "fraud.privacy.>"


def subject_erased(subject_id: str) -> str:
    """One SubjectErased per subject (append-once: forgetting twice records one erasure)."""
    return f"fraud.privacy.erased.{subject_id}"


def features_rpc(card_token: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    """Request subject of the features instance that owns the card's partition."""
    return features_rpc_partition(partition_of(card_token, partitions))


def features_rpc_partition(partition: int) -> str:
    return f"fraud.rpc.features.compute.{partition}"


def features_decide(card_token: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    """Subject where the card's features owner computes the vector and forwards it to scoring (rpc.Forward)."""
    return features_decide_partition(partition_of(card_token, partitions))


def features_decide_partition(partition: int) -> str:
    return f"fraud.rpc.features.decide.{partition}"


SCORING_RPC = "fraud.rpc.scoring.score"


ACCESS_ALL = "fraud.access.>"


def access_events(principal_id: str) -> str:
    """All role grants and revocations of one principal share a subject (appends carry its expected last sequence).

    The token is a hash of the principal id: names may hold characters a subject cannot (``.``, ``@``).
    """
    return f"fraud.access.{hashlib.sha256(principal_id.encode()).hexdigest()[:32]}"
