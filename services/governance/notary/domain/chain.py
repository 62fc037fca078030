"""Per-stream sealing state: the last checkpoint, and the event hashes read since (pure, no I/O).

Merkle hashing, canonical bytes and signing are `fraudshared.audit` (shared with ``fraudctl audit``); this
module decides *what* to seal and keeps the chain: each checkpoint starts right after the previous one and
carries its hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fraudshared.audit.checkpoint import Checkpoint, seal
from fraudshared.audit.keys import SigningKey


class SequenceGap(Exception):
    """A stream sequence is missing or unreadable: evidence of tampering; the notary never seals over it."""

    def __init__(self, stream: str, seq: int) -> None:
        self.stream, self.seq = stream, seq
        super().__init__(f"{stream} sequence {seq} is missing or unreadable: not sealing past it (tamper evidence)")


@dataclass
class StreamChain:
    """What the notary knows of one stream.

    Attributes:
        stream: Stream name.
        last: The last sealed checkpoint (None before the first).
        audit_seq: Its sequence on the AUDIT stream (0 before the first): the next seal's expected last sequence.
        pending: Event hashes read after ``last``, for sequences ``first_pending`` onwards.
        pending_since: Clock reading when the oldest pending event was read.
    """

    stream: str
    last: Checkpoint | None = None
    audit_seq: int = 0
    pending: list[bytes] = field(default_factory=list)
    pending_since: float | None = None

    @property
    def first_pending(self) -> int:
        """The sequence of the first event not sealed yet."""
        return self.last.last_sequence + 1 if self.last else 1

    @property
    def next_seq(self) -> int:
        """The next sequence to read."""
        return self.first_pending + len(self.pending)

    def add(self, seq: int, event_hash: bytes | None, now: float) -> None:
        """Records the next event's hash.

        Raises:
            SequenceGap: If ``event_hash`` is None (unreadable) or ``seq`` skips a sequence.
            ValueError: If ``seq`` was already read.
        """
        if seq < self.next_seq:
            raise ValueError(f"{self.stream} sequence {seq} was already read (next is {self.next_seq})")
        if seq > self.next_seq:
            raise SequenceGap(self.stream, self.next_seq)
        if event_hash is None:
            raise SequenceGap(self.stream, seq)
        if not self.pending:
            self.pending_since = now
        self.pending.append(event_hash)

    def due(self, now: float, every_n: int, every_s: float) -> int:
        """Events to seal now: ``every_n`` once that many wait; all once the oldest waited ``every_s``."""
        if len(self.pending) >= every_n:
            return every_n
        if self.pending and self.pending_since is not None and now - self.pending_since >= every_s:
            return len(self.pending)
        return 0

    def seal(self, count: int, key: SigningKey, sealed_at: datetime) -> Checkpoint:
        """The signed checkpoint over the first ``count`` pending events (state is unchanged until `sealed`)."""
        return seal(self.stream, self.first_pending, self.pending[:count], self.last, key, sealed_at)

    def sealed(self, checkpoint: Checkpoint, audit_seq: int, now: float) -> None:
        """The checkpoint was appended to AUDIT at ``audit_seq``: drop its events and chain onto it."""
        if checkpoint.first_sequence != self.first_pending or checkpoint.size > len(self.pending):
            raise ValueError(f"checkpoint {checkpoint.label} does not seal this chain's pending events")
        del self.pending[: checkpoint.size]
        self.last, self.audit_seq = checkpoint, audit_seq
        self.pending_since = now if self.pending else None
