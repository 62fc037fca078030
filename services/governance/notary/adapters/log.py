"""The notary's view of the event log: stream ends, event hashes, the last checkpoint, and sealing (JetStream)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fraudshared.audit import jetstream as audit_log
from fraudshared.audit.checkpoint import Checkpoint, checkpoint_subject
from fraudshared.events.store import AppendResult, EventStore


class JetStreamNotaryLog:
    """Reads streams and appends AuditCheckpointSealed to AUDIT with the expected last subject sequence."""

    def __init__(self, js: JetStreamContext, store: EventStore) -> None:
        self._js = js
        self._store = store

    async def stream_end(self, stream: str) -> int | None:
        """The stream's last sequence, or None while it does not exist."""
        try:
            return (await audit_log.stream_bounds(self._js, stream))[1]
        except NotFoundError:
            return None

    def event_hashes(self, stream: str, subject: str, start: int, end: int) -> AsyncIterator[tuple[int, bytes | None]]:
        """``(seq, event hash or None)`` for every sequence ``start..end``."""
        return audit_log.read_event_hashes(self._js, stream, subject, start, end)

    async def last_checkpoint(self, stream: str) -> audit_log.StoredCheckpoint | None:
        return await audit_log.last_checkpoint(self._js, stream)

    async def all_checkpoints(self, stream: str) -> list[audit_log.StoredCheckpoint]:
        """Every checkpoint event of ``stream``, readable or not, in append order."""
        return await audit_log.read_checkpoints(self._js, stream)

    async def append_checkpoint(self, checkpoint: Checkpoint, expected_audit_seq: int) -> AppendResult:
        """Appends the checkpoint unless another was appended for the stream since ``expected_audit_seq``.

        Raises:
            fraudshared.events.store.ConcurrencyError: If another notary sealed first.
        """
        return await self._store.append(
            checkpoint.to_envelope(),
            subject=checkpoint_subject(checkpoint.stream),
            expected_last_subject_seq=expected_audit_seq,
        )
