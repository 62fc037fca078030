"""Quarantine: a reader that cannot decode or apply a stored event records it, skips it, and goes on.

Streams are append-only (``deny_delete``/``deny_purge``), so a bad event can never be removed: a reader that
stopped on one would stop on it after every restart, for good (issue 12). Instead each reader appends one
``EventQuarantined`` per (reader, stream, sequence) to the QUARANTINE stream, counts it in
``fraud_events_quarantined_total{reader,stream}`` and logs one line naming stream, sequence and reason, never
the event's contents. docs/events.md "Quarantine" has the record's fields and subjects.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from fraud.events.v1 import quarantine_events_pb2 as pb
from fraudshared.events.envelope import (
    Envelope,
    EnvelopeError,
    UnexpectedType,
    event_id,
    new_envelope,
    raw_message_hash,
)
from fraudshared.events.store import ConcurrencyError, EventStore, UnreadableEvent
from fraudshared.events.upcasting import UpcastError
from fraudshared.telemetry import get_logger

QUARANTINE_STREAM = "QUARANTINE"
QUARANTINE_ALL = "fraud.quarantine.>"
SCHEMA_VERSION = 1
QUARANTINED = Counter(
    "fraud_events_quarantined_total",
    "Stored events a reader skipped because it could not decode or apply them",
    ["reader", "stream"],
)
_READER_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LONG_DIGITS_RE = re.compile(r"\d{13,}", re.ASCII)  # could be a card number: never copied into an event
_MAX_TEXT = 256
_MAX_REMEMBERED = 100_000
log = get_logger(__name__)


def quarantine_subject(reader: str, stream: str, seq: int) -> str:
    """``fraud.quarantine.<reader>.<stream>.<seq>``: one subject per record, so it is appended at most once."""
    return f"fraud.quarantine.{reader}.{stream}.{seq}"


def reason_of(error: BaseException) -> pb.QuarantineReason.ValueType:
    """Which step failed, from what a handler raised on a readable envelope."""
    if isinstance(error, UnexpectedType):
        return pb.QUARANTINE_REASON_UNEXPECTED_TYPE
    if isinstance(error, EnvelopeError | DecodeError | UpcastError):
        return pb.QUARANTINE_REASON_UNPARSABLE_PAYLOAD
    return pb.QUARANTINE_REASON_APPLY_FAILED


def _safe(text: str) -> str:
    return _LONG_DIGITS_RE.sub("[digits]", text[:_MAX_TEXT])


class Quarantine:
    """Records the events one reader skips (see the module docstring)."""

    def __init__(
        self, store: EventStore, reader: str, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        """Creates the reader's quarantine.

        Args:
            store: Where EventQuarantined is appended.
            reader: Who skips, e.g. ``monitor``: letters, digits, ``-`` and ``_`` (a NATS subject token).
            clock: Wall clock for ``quarantined_at``.

        Raises:
            ValueError: If ``reader`` is not a usable name.
        """
        if not _READER_RE.fullmatch(reader):
            raise ValueError(f"reader name must be 1-64 of [A-Za-z0-9_-], got {reader!r}")
        self.reader = reader
        self._store = store
        self._clock = clock
        # Sequences recorded by this process: a reader that meets one again (a projection re-reading from its
        # last applied position) neither appends, counts nor logs it twice.
        self._recorded: set[tuple[str, int]] = set()

    async def unreadable(self, event: UnreadableEvent) -> None:
        """Records a message that is not a readable envelope (an `EventStore.read_subject` ``on_unreadable``)."""
        await self.record(
            event.stream,
            event.seq,
            event.subject,
            pb.QUARANTINE_REASON_UNREADABLE_ENVELOPE,
            event.error,
            raw_message_hash(event.headers, event.body),
        )

    async def failed(self, stream: str, seq: int, subject: str, envelope: Envelope, error: BaseException) -> None:
        """Records a readable envelope whose payload the reader could not parse or apply."""
        await self.record(
            stream, seq, subject, reason_of(error), error, bytes.fromhex(envelope.sha256()), envelope=envelope
        )

    async def record(
        self,
        stream: str,
        seq: int,
        subject: str,
        reason: pb.QuarantineReason.ValueType,
        error: BaseException,
        message_sha256: bytes,
        *,
        envelope: Envelope | None = None,
    ) -> None:
        """Appends EventQuarantined once per (reader, stream, seq), counts and logs the skip.

        Raises:
            nats.js.errors.Error: If the record cannot be appended (the caller must not skip unrecorded).
        """
        if (stream, seq) in self._recorded:
            return
        now = self._clock()
        message = pb.EventQuarantined(
            schema_version=SCHEMA_VERSION,
            reader=self.reader,
            stream=stream,
            stream_sequence=seq,
            nats_subject=_safe(subject),
            reason=reason,
            error_type=type(error).__name__,
            message_sha256=message_sha256,
            event_schema_version=envelope.schema_version if envelope else 0,
            event_type=_safe(envelope.type) if envelope else "",
        )
        message.quarantined_at.FromDatetime(now)
        record = new_envelope(
            message,
            source=f"/fraud/{self.reader}",
            subject=f"{stream}.{seq}",
            event_id=event_id("EventQuarantined", f"{self.reader}.{stream}.{seq}"),
            time=now,
            schema_version=SCHEMA_VERSION,
        )
        # Expected 0: a restart that meets the same event again, even after the dedupe window, adds nothing.
        with contextlib.suppress(ConcurrencyError):
            await self._store.append(
                record, subject=quarantine_subject(self.reader, stream, seq), expected_last_subject_seq=0
            )
        if len(self._recorded) < _MAX_REMEMBERED:
            self._recorded.add((stream, seq))
        QUARANTINED.labels(self.reader, stream).inc()
        log.error(
            "%s skipped %s sequence %d (%s, %s); recorded on %s",
            self.reader, stream, seq, pb.QuarantineReason.Name(reason), type(error).__name__, QUARANTINE_STREAM,
        )  # fmt: skip


async def read_quarantined(store: EventStore) -> list[pb.EventQuarantined]:
    """Every EventQuarantined on QUARANTINE, in append order (none while the stream does not exist).

    Anything else stored there is passed over here; the notary seals QUARANTINE like any stream, so
    ``audit verify`` still reports it as unreadable by sequence.
    """
    records: list[pb.EventQuarantined] = []
    try:
        async for stored in store.read_subject(QUARANTINE_STREAM, QUARANTINE_ALL, on_unreadable=lambda _: None):
            with contextlib.suppress(EnvelopeError, DecodeError):
                records.append(stored.envelope.payload(pb.EventQuarantined))
    except NotFoundError:
        return []
    return records
