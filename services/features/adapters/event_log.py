"""FeatureLog over JetStream: FeatureVectorComputed and LabelApplied appended once each, replayed in order.

The replay takes the FIRST event on a transaction's once-only subject as the record, as `audit replay` does
(`fraudshared/audit/replay.py`, keyed by kind and transaction over the partitions read): a later one can only
come from a writer that skipped the expected-sequence guard. It is a conflict, counted and logged, never
folded, so the state a restart rebuilds is the state the audit re-derives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC

from nats.js import JetStreamContext
from prometheus_client import Counter

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.envelope import EnvelopeError, UnexpectedType, from_nats
from fraudshared.events.once import OnceLog, messages_after
from fraudshared.events.quarantine import Quarantine
from fraudshared.events.store import EventStore, StoredEvent
from fraudshared.features.recorded import COMPUTED_TYPE, LABEL_TYPE, Recorded, parse
from fraudshared.telemetry import get_logger

FEATURES = "FEATURES"
RECORDED_TYPES = (COMPUTED_TYPE, LABEL_TYPE)
KINDS = ("computed", "label")  # token 2 of the subjects features writes (fraudshared.subjects)
CONFLICTS = Counter(
    "fraud_features_replay_conflicts_total",
    "Later FEATURES events on a transaction's once-only subject, not folded by the rebuild (the first is the record)",
    ["kind"],
)
_MAX_REPORTED = 100_000
_CHUNK = 256  # events read before their gets are sent together (one read batch of the store)
log = get_logger(__name__)


class JetStreamFeatureLog:
    """Implements services.features.service_layer.ports.FeatureLog."""

    def __init__(
        self,
        once: OnceLog,
        store: EventStore,
        partitions: list[int] | None = None,
        *,
        js: JetStreamContext,
        reader: str = "features",
    ) -> None:
        self._once = once
        self._store = store
        self._js = js  # message gets: was a transaction's event recorded before where a replay starts?
        self._partitions = None if partitions is None else {str(p) for p in partitions}
        self._quarantine = Quarantine(store, reader)  # what replay cannot read is recorded and skipped
        self._reported: set[int] = set()  # conflicts this process counted and logged (a rebuild may run again)

    async def append_computed(
        self, event: events.FeatureVectorComputed
    ) -> tuple[events.FeatureVectorComputed | None, int]:
        return await self._once.append_once_at(
            event,
            business_id=event.transaction_id,
            subject=subjects.feature_vector_computed(subjects.card_key(event), event.transaction_id),
            stream=FEATURES,
            time=event.event_time.ToDatetime(tzinfo=UTC),
        )

    async def append_label(self, event: events.LabelApplied) -> tuple[events.LabelApplied | None, int]:
        # One LabelApplied per LABELS sequence (a transaction may have corrections): the sequence is the last
        # subject token, so the once-only key of replay and audit is (label, "<transaction id>.<sequence>").
        return await self._once.append_once_at(
            event,
            business_id=f"label:{event.transaction_id}:{event.labels_sequence}",
            subject=subjects.label_applied(subjects.card_key(event), event.transaction_id, event.labels_sequence),
            stream=FEATURES,
            time=event.reported_at.ToDatetime(tzinfo=UTC),
        )

    async def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, Recorded]]:
        """Owned partitions' events from `from_seq`, in stream order (one pass; others' events are skipped).

        One pass in stream order, not one read per partition: the state's last applied sequence only ever
        grows, which is what lets a restart skip what a snapshot already holds. First wins per once-only
        subject: the keys met in this pass are kept in memory (about 100 bytes per transaction, for the pass
        only); after a snapshot, an event whose key this pass has not met costs one message get (sent 256
        at a time), which finds a record the snapshot already folded.
        """
        met: set[tuple[str, str]] = set()
        events = self._store.read_subject(
            FEATURES, subjects.FEATURES_ALL, from_seq, on_unreadable=self._quarantine.unreadable
        )
        async for chunk in _chunks(events, _CHUNK):
            owned = [(stored, _once_key(stored.subject)) for stored in chunk if self._owned(stored.subject)]
            before = await self._recorded_before({key for _, key in owned if key and key not in met}, from_seq)
            for stored, key in owned:
                if key is not None:
                    if key in met or key in before:
                        self._conflict(stored.seq, key[0])
                        continue
                    met.add(key)
                    met.add(_legacy_label_key(key))  # a later label on the old subject form is a conflict
                try:
                    if stored.envelope.type not in RECORDED_TYPES:
                        raise UnexpectedType(f"{stored.envelope.type!r} is not a FEATURES event")
                    event = parse(stored.envelope)
                except Exception as exc:  # a wrong type or a payload that does not parse: recorded, skipped
                    await self._quarantine.failed(FEATURES, stored.seq, stored.subject, stored.envelope, exc)
                    continue
                if event is not None:
                    yield stored.seq, event

    def _owned(self, subject: str) -> bool:
        parts = subject.split(".")
        return self._partitions is None or len(parts) <= 3 or parts[3] in self._partitions

    async def _recorded_before(self, keys: set[tuple[str, str]], from_seq: int) -> set[tuple[str, str]]:
        """The keys with an owned, readable event before `from_seq` (what a snapshot folded): gets in parallel."""
        if from_seq <= 1 or not keys:
            return set()
        ordered = list(keys)
        found = await asyncio.gather(*(self._first_before(key, from_seq) for key in ordered))
        return {key for key, before in zip(ordered, found, strict=True) if before}

    async def _first_before(self, key: tuple[str, str], from_seq: int) -> bool:
        """Walks the key's messages with next-by-subject gets: normally the first is the event at hand."""
        kind, transaction_id = key
        if "*" in transaction_id or ">" in transaction_id:
            return False  # no exact filter: such a key is decided by the pass alone
        filters = [f"fraud.features.{kind}.*.{transaction_id}"]
        if kind == "label" and "." not in transaction_id:  # old subject form: any earlier label of it counts
            filters.append(f"fraud.features.label.*.{transaction_id}.*")
        for subject_filter in filters:
            async with contextlib.aclosing(messages_after(self._js, FEATURES, subject_filter, 0)) as messages:
                async for message in messages:
                    if message.seq >= from_seq:
                        break  # read in this pass: `met` decides
                    if self._owned(message.subject) and _readable(message.headers, message.data):
                        return True
        return False

    def _conflict(self, seq: int, kind: str) -> None:
        if seq in self._reported:
            return
        if len(self._reported) < _MAX_REPORTED:
            self._reported.add(seq)
        kind = kind if kind in KINDS else "other"  # the subject is the writer's: never a label or log value
        CONFLICTS.labels(kind).inc()
        log.error(
            "features replay: FEATURES sequence %d conflicts with the recorded %s event of its transaction "
            "(an earlier sequence on its subject); not folded",
            seq, kind,
        )  # fmt: skip


async def _chunks(events: AsyncIterator[StoredEvent], size: int) -> AsyncIterator[list[StoredEvent]]:
    chunk: list[StoredEvent] = []
    async for stored in events:
        chunk.append(stored)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _once_key(subject: str) -> tuple[str, str] | None:
    """(kind, id) of a once-only subject ``fraud.features.<kind>.<partition>.<id>``.

    The id is the transaction id, or ``<transaction id>.<LABELS sequence>`` for a LabelApplied since label
    corrections (one per label that took effect). An old-form label subject conflicts with any earlier label
    of its transaction (`_legacy_label_key`).
    """
    parts = subject.split(".", 4)
    return (parts[2], parts[4]) if len(parts) == 5 else None


def _legacy_label_key(key: tuple[str, str]) -> tuple[str, str]:
    """The key a label of the same transaction has on the old subject form (``...label.<p>.<tx>``).

    Since corrections, each LabelApplied is on ``...label.<p>.<tx>.<labels_seq>``; an event on the old form
    after any label of its transaction can only come from a writer that skipped the guard: a conflict.
    """
    kind, name = key
    return (kind, name.split(".", 1)[0]) if kind == "label" else key


def _readable(headers: dict[str, str] | None, body: bytes | None) -> bool:
    try:
        from_nats(headers, body)
    except EnvelopeError:
        return False
    return True
