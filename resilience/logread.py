"""Reads the decisions back from the log: every TransactionReceived and PredictionMade, across all partitions."""

from __future__ import annotations

import nats

from bench.baseline_nats import hush_nats_tls_eof_note
from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.events.store import EventStore, StoredEvent, UnreadableEvent
from fraudshared.events.streams import default_specs
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.tls import ssl_context
from resilience.check import PREDICTION, RECEIVED, LogRecord

_STREAMS = {spec.name: spec for spec in default_specs()}
TRANSACTIONS, PREDICTIONS = "TRANSACTIONS", "PREDICTIONS"


async def read_log(nats_url: str, auditor: CredentialFiles | None = None) -> tuple[list[LogRecord], list[str]]:
    """Every TransactionReceived and PredictionMade on the platform's log.

    Args:
        nats_url: The platform's NATS; a tls:// one is read over TLS as `auditor` (a read-only principal).
        auditor: The certificate to present (e.g. ``<var>/credentials/auditor``); needed for tls:// only.

    Returns:
        The records, and one line per event that could not be read (skipped; the rest is still read) or
        stream whose read stopped.
    """
    tls = None
    if nats_url.startswith("tls://"):
        if auditor is None:
            raise ValueError("a tls:// NATS needs a client certificate: pass the auditor's credential files")
        tls = ssl_context(auditor)
        hush_nats_tls_eof_note()
    nc = await nats.connect(
        nats_url, connect_timeout=5, max_reconnect_attempts=3, tls=tls, tls_hostname="localhost" if tls else None
    )
    records: list[LogRecord] = []
    problems: list[str] = []
    try:
        store = EventStore(nc.jetstream(timeout=10.0), read_batch=1024)

        def note(event: UnreadableEvent) -> None:  # named and skipped, as the platform's readers do: the rest reads
            problems.append(f"{event.stream} seq {event.seq}: unreadable: {event.error}")

        # TRANSACTIONS holds more than TransactionReceived (its subjects are the stream's, from its one spec).
        for stream, subject_filter, kind in (
            (TRANSACTIONS, _STREAMS[TRANSACTIONS].subjects[0], RECEIVED),
            (PREDICTIONS, subjects.PREDICTIONS_MADE_ALL, PREDICTION),
        ):
            try:
                async for stored in store.read_subject(stream, subject_filter, on_unreadable=note):
                    record = _record(stored, kind)
                    if isinstance(record, str):
                        problems.append(record)
                    elif record is not None:
                        records.append(record)
            except Exception as exc:  # a stream that cannot be read: the report must say so, not crash
                problems.append(f"{stream}: read stopped: {type(exc).__name__}: {exc}")
    finally:
        await nc.close()
    return records, problems


def _record(stored: StoredEvent, kind: str) -> LogRecord | str | None:
    envelope = stored.envelope
    if not envelope.type.endswith("." + kind):
        return None
    try:
        if kind == RECEIVED:
            received = envelope.payload(tx_events.TransactionReceived)
            return LogRecord(kind, received.transaction_id, stored.seq)
        made = envelope.payload(tx_events.PredictionMade)
    except Exception as exc:  # a payload that does not parse is a finding, not a reason to stop
        return f"{stored.subject} seq {stored.seq}: {type(exc).__name__}: {exc}"
    return LogRecord(
        kind, made.transaction_id, stored.seq, common.Decision.Name(made.decision).removeprefix("DECISION_")
    )
