"""A transaction's recorded events as the audit tools read them (replay, explain, prove).

Each of a transaction's events lives on a once-only subject: the FIRST message there is the record. A later
one can only be there if someone appended without the expected-sequence guard; it is a conflict, listed and
never taken as the record. A message that cannot be read is reported (stream and sequence), never raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from google.protobuf.message import Message
from nats.js import JetStreamContext

from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.events.once import RecordUnreadable, StoredMessage, first_message, later_messages

M = TypeVar("M", bound=Message)
# The contract's transaction id (ingest_service.proto): also what keeps a subject filter free of wildcards.
TRANSACTION_ID_RE = re.compile(r"[A-Za-z0-9_:\-]{1,64}")
# Where a transaction's events live: (stream, event type, subject filter over every partition).
TRANSACTION_EVENTS = (
    ("TRANSACTIONS", tx_events.TransactionReceived, subjects.transaction_received_any),
    ("FEATURES", tx_events.FeatureVectorComputed, subjects.feature_vector_computed_any),
    ("PREDICTIONS", tx_events.PredictionMade, subjects.prediction_made_any),
)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A later message on a once-only subject: not the record."""

    stream: str
    seq: int
    subject: str
    record_seq: int

    def __str__(self) -> str:
        return (
            f"{self.stream} seq {self.seq}: a second event on {self.subject} conflicts with the record "
            f"(seq {self.record_seq}) and is not taken as it"
        )


@dataclass
class Record(Generic[M]):
    """What a once-only subject holds: the first message (the record), its event if readable, and conflicts."""

    stream: str
    subject_filter: str
    message: StoredMessage | None = None
    event: M | None = None
    unreadable: str = ""
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def seq(self) -> int:
        return self.message.seq if self.message is not None else 0

    def findings(self) -> list[str]:
        """One line per problem: the record unreadable, then each conflict."""
        return ([self.unreadable] if self.unreadable else []) + [str(c) for c in self.conflicts]


async def read_record(js: JetStreamContext, stream: str, subject_filter: str, message_type: type[M]) -> Record[M]:
    """The first message on `subject_filter` parsed as `message_type`, and any later ones as conflicts."""
    record: Record[M] = Record(stream, subject_filter, await first_message(js, stream, subject_filter))
    if record.message is None:
        return record
    try:
        record.event = record.message.payload(message_type)
    except RecordUnreadable as exc:
        record.unreadable = str(exc)
    later = await later_messages(js, stream, subject_filter, record.message.seq)
    record.conflicts = [Conflict(stream, m.seq, m.subject, record.message.seq) for m in later]
    return record


class FirstSeen:
    """First-wins bookkeeping over a stream read in order: which once-only keys were seen, and where."""

    def __init__(self, stream: str) -> None:
        self._stream = stream
        self._first: dict[str, int] = {}
        self.conflicts: list[Conflict] = []

    def first(self, key: str, seq: int, subject: str) -> bool:
        """True if `key` is met for the first time (its record); else the message is recorded as a conflict."""
        record_seq = self._first.setdefault(key, seq)
        if record_seq != seq:
            self.conflicts.append(Conflict(self._stream, seq, subject, record_seq))
            return False
        return True


def transaction_of_subject(subject: str) -> str:
    """The transaction id of a per-transaction subject (``fraud.<family>.<kind>.<partition>.<transaction id>``)."""
    return subject.split(".", 4)[-1]
