"""The record of audit command runs on JetStream: AuditCommandRun on ``fraud.audit.commands.<verb>`` in AUDIT.

Governance's NATS user is the only one that may append to AUDIT (the notary runs inside it), so the audit CLIs
send their runs here over gRPC (`services.governance.entrypoints.audit_servicer`) instead of appending.
"""

from __future__ import annotations

from datetime import UTC

from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore

SOURCE = "/fraud/governance"
SCHEMA_VERSION = 1
SUBJECT_PREFIX = "fraud.audit.commands."


def run_subject(command: str) -> str:
    """``fraud.audit.commands.<last word of the command>``, e.g. ``fraud.audit.commands.verify``."""
    return SUBJECT_PREFIX + (command.split()[-1] if command.strip() else "audit")


class JetStreamAuditRunLog:
    """Appends AuditCommandRun events through the shared event store (idempotent per run id)."""

    def __init__(self, store: EventStore) -> None:
        """Appends through ``store``."""
        self._store = store

    async def record(self, run: audit_pb.AuditCommandRun) -> int:
        """Appends ``run`` (its ``run_id``, ``actor`` and ``finished_at`` set) and returns its AUDIT sequence.

        Raises:
            nats.errors.Error: If JetStream does not acknowledge the append (also TimeoutError).
        """
        run.schema_version = SCHEMA_VERSION
        envelope = new_envelope(
            run,
            source=SOURCE,
            subject=run.actor,
            event_id=event_id("AuditCommandRun", run.run_id),
            time=run.finished_at.ToDatetime(tzinfo=UTC),
            schema_version=SCHEMA_VERSION,
        )
        result = await self._store.append(envelope, subject=run_subject(run.command))
        return result.seq
