"""Label precedence: which of a transaction's labels is in force (one pure function, every reader uses it).

A transaction may be labelled several times: an analyst's verdict, the cardholder's confirmation, a
chargeback weeks later, a labeler's correction. All are recorded (LABELS, one subject per transaction, in
order); the label in force is decided by the kind of source, then by order:

    chargeback > customer confirmed > analyst > unspecified (older labels, other sources)

A label takes effect when its source ranks at least as high as the one in force (within one kind the latest
wins); a lower-ranked one is recorded but outranked. Ingest refuses to record a retry: the same principal
reporting the same verdict with the same source as its own latest label of the transaction.

The outcome depends only on the recorded labels in stream order, so features, monitor and an audit replay
reach the same label in force. Labels recorded before sources and principals existed (schema version 1)
are read through `upcast`: source unspecified, principal "unknown".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fraud.events.v1 import transaction_events_pb2 as events

UNKNOWN_PRINCIPAL = "unknown"
LABEL_SCHEMA_VERSION = 2
RANK: dict[int, int] = {
    events.LABEL_SOURCE_UNSPECIFIED: 0,
    events.LABEL_SOURCE_ANALYST: 1,
    events.LABEL_SOURCE_CUSTOMER_CONFIRMED: 2,
    events.LABEL_SOURCE_CHARGEBACK: 3,
}


class Outcome(enum.Enum):
    """What a label does to its transaction's label in force (ReportLabel answers it)."""

    FIRST = "first"
    CORRECTION = "correction"
    CONFIRMATION = "confirmation"
    OUTRANKED = "outranked"
    DUPLICATE = "duplicate"

    @property
    def takes_effect(self) -> bool:
        return self in (Outcome.FIRST, Outcome.CORRECTION, Outcome.CONFIRMATION)


@dataclass(frozen=True, slots=True)
class LabelFact:
    """One recorded label, as precedence sees it."""

    is_fraud: bool
    source: int  # a LabelSource value
    principal: str

    @property
    def rank(self) -> int:
        return RANK.get(self.source, 0)  # a kind this reader does not know ranks as unspecified


def upcast(label: events.LabelReported) -> events.LabelReported:
    """A LabelReported in the current shape: version-1 labels get source unspecified, principal "unknown"."""
    if label.schema_version >= LABEL_SCHEMA_VERSION and label.principal:
        return label
    current = events.LabelReported()
    current.CopyFrom(label)
    current.label_source = events.LABEL_SOURCE_UNSPECIFIED
    current.principal = label.principal or UNKNOWN_PRINCIPAL
    return current


def fact_of(label: events.LabelReported | events.LabelApplied) -> LabelFact:
    """The precedence view of a recorded label (LabelReported is upcast first; LabelApplied likewise)."""
    if isinstance(label, events.LabelReported):
        label = upcast(label)
    return LabelFact(label.is_fraud, int(label.label_source), label.principal or UNKNOWN_PRINCIPAL)


def decide(in_force: LabelFact | None, new: LabelFact) -> Outcome:
    """What `new` does given the label in force (never DUPLICATE: that needs the history, see `classify`)."""
    if in_force is None:
        return Outcome.FIRST
    if new.rank < in_force.rank:
        return Outcome.OUTRANKED
    return Outcome.CONFIRMATION if new.is_fraud == in_force.is_fraud else Outcome.CORRECTION


def apply(in_force: LabelFact | None, new: LabelFact) -> tuple[LabelFact | None, Outcome]:
    """The label in force after `new`, and what `new` did."""
    outcome = decide(in_force, new)
    return (new if outcome.takes_effect else in_force), outcome


def in_force(history: Iterable[LabelFact]) -> LabelFact | None:
    """The label in force after a transaction's labels, folded in stream order."""
    current: LabelFact | None = None
    for fact in history:
        current, _ = apply(current, fact)
    return current


def classify(history: Sequence[LabelFact], new: LabelFact) -> Outcome:
    """What reporting `new` after `history` (the transaction's recorded labels in order) would do.

    DUPLICATE when the same principal's latest label with the same source has the same verdict: a retry,
    which is not recorded again.
    """
    own = [f for f in history if f.principal == new.principal and f.source == new.source]
    if own and own[-1].is_fraud == new.is_fraud:
        return Outcome.DUPLICATE
    return decide(in_force(history), new)
