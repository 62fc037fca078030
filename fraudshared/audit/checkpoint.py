"""Audit checkpoints: canonical bytes, checkpoint hash, sealing and signature checks (docs/audit.md).

A checkpoint says "events ``first..last`` of stream S have these event hashes (Merkle root), and follow the
checkpoint with this hash"; the notary signs its canonical bytes with Ed25519. The canonical bytes are
ASCII lines, one field each, in this order (integers in decimal, hashes in lower-case hex)::

    fraud-audit-checkpoint-v1
    stream=<STREAM>
    first_sequence=<first>
    last_sequence=<last>
    merkle_root=<64 hex>
    previous_checkpoint_hash=<64 hex, or empty for a stream's first checkpoint>
    event_hash_prefixes_sha256=<64 hex>
    key_id=<16 hex>
    key_version=<version>
    sealed_at=<RFC 3339 UTC, 6 fractional digits, Z>

each line ending in LF. The checkpoint hash (what the next checkpoint's ``previous_checkpoint_hash`` holds)
is SHA-256 over those same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudshared.audit import merkle
from fraudshared.audit.keys import KeyRing, SigningKey
from fraudshared.events.envelope import Envelope, event_id, format_time, new_envelope

PREAMBLE = b"fraud-audit-checkpoint-v1\n"
PREFIX_BYTES = 8
SCHEMA_VERSION = 1
SOURCE = "/fraud/governance/notary"
CHECKPOINT_SUBJECT_PREFIX = "fraud.audit.checkpoints."
_STREAM_RE = re.compile(r"[A-Za-z0-9_\-]+")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")


class CheckpointError(ValueError):
    """A checkpoint is malformed (wrong sizes, bad range, unknown stream name form)."""


def checkpoint_subject(stream: str) -> str:
    """Subject of a stream's checkpoints on the AUDIT stream: ``fraud.audit.checkpoints.<STREAM>``."""
    if not _STREAM_RE.fullmatch(stream):
        raise CheckpointError(f"not a stream name: {stream!r}")
    return CHECKPOINT_SUBJECT_PREFIX + stream


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One sealed range of one stream (mirrors the AuditCheckpointSealed event)."""

    stream: str
    first_sequence: int
    last_sequence: int
    merkle_root: bytes
    previous_checkpoint_hash: bytes
    event_hash_prefixes: bytes
    key_id: str
    key_version: int
    sealed_at: datetime
    signature: bytes = b""

    def __post_init__(self) -> None:
        if not _STREAM_RE.fullmatch(self.stream):
            raise CheckpointError(f"checkpoint names no valid stream: {self.stream!r}")
        if not 1 <= self.first_sequence <= self.last_sequence:
            raise CheckpointError(f"checkpoint range {self.first_sequence}..{self.last_sequence} is empty or invalid")
        if len(self.merkle_root) != merkle.HASH_SIZE:
            raise CheckpointError("checkpoint Merkle root is not 32 bytes")
        if len(self.previous_checkpoint_hash) not in (0, merkle.HASH_SIZE):
            raise CheckpointError("checkpoint previous hash is neither empty nor 32 bytes")
        if len(self.event_hash_prefixes) != PREFIX_BYTES * self.size:
            raise CheckpointError(f"checkpoint has {len(self.event_hash_prefixes)} prefix bytes for {self.size} events")
        if not _KEY_ID_RE.fullmatch(self.key_id) or self.key_version < 0:
            raise CheckpointError(f"checkpoint key id {self.key_id!r} / version {self.key_version} is malformed")
        if self.sealed_at.tzinfo is None:
            raise CheckpointError("checkpoint sealed_at must be timezone-aware")
        object.__setattr__(self, "sealed_at", self.sealed_at.astimezone(UTC))

    @property
    def size(self) -> int:
        """How many events it covers."""
        return self.last_sequence - self.first_sequence + 1

    @property
    def label(self) -> str:
        """``STREAM[first..last]`` for messages."""
        return f"{self.stream}[{self.first_sequence}..{self.last_sequence}]"

    def canonical_bytes(self) -> bytes:
        """The signed bytes (module docstring)."""
        fields = (
            ("stream", self.stream),
            ("first_sequence", str(self.first_sequence)),
            ("last_sequence", str(self.last_sequence)),
            ("merkle_root", self.merkle_root.hex()),
            ("previous_checkpoint_hash", self.previous_checkpoint_hash.hex()),
            ("event_hash_prefixes_sha256", hashlib.sha256(self.event_hash_prefixes).hexdigest()),
            ("key_id", self.key_id),
            ("key_version", str(self.key_version)),
            ("sealed_at", format_time(self.sealed_at)),
        )
        return PREAMBLE + "".join(f"{name}={value}\n" for name, value in fields).encode("ascii")

    def checkpoint_hash(self) -> bytes:
        """SHA-256 over the canonical bytes: the link the next checkpoint carries."""
        return hashlib.sha256(self.canonical_bytes()).digest()

    def prefix_at(self, seq: int) -> bytes:
        """The recorded event-hash prefix of sequence ``seq`` (inside the range)."""
        offset = (seq - self.first_sequence) * PREFIX_BYTES
        return self.event_hash_prefixes[offset : offset + PREFIX_BYTES]

    def to_proto(self) -> audit_pb.AuditCheckpointSealed:
        message = audit_pb.AuditCheckpointSealed(
            schema_version=SCHEMA_VERSION,
            stream=self.stream,
            first_sequence=self.first_sequence,
            last_sequence=self.last_sequence,
            merkle_root=self.merkle_root,
            previous_checkpoint_hash=self.previous_checkpoint_hash,
            signature=self.signature,
            key_id=self.key_id,
            key_version=self.key_version,
            event_hash_prefixes=self.event_hash_prefixes,
        )
        message.sealed_at.FromDatetime(self.sealed_at)
        return message

    @classmethod
    def from_proto(cls, message: audit_pb.AuditCheckpointSealed) -> Checkpoint:
        """Raises `CheckpointError` when the event does not describe a valid checkpoint."""
        return cls(
            stream=message.stream,
            first_sequence=int(message.first_sequence),
            last_sequence=int(message.last_sequence),
            merkle_root=bytes(message.merkle_root),
            previous_checkpoint_hash=bytes(message.previous_checkpoint_hash),
            event_hash_prefixes=bytes(message.event_hash_prefixes),
            key_id=message.key_id,
            key_version=int(message.key_version),
            sealed_at=message.sealed_at.ToDatetime(UTC),
            signature=bytes(message.signature),
        )

    def to_envelope(self) -> Envelope:
        """The AuditCheckpointSealed event; its id derives from stream and last sequence (one seal per range end)."""
        business_id = f"{self.stream}-{self.last_sequence}"
        return new_envelope(
            self.to_proto(),
            source=SOURCE,
            subject=business_id,
            event_id=event_id("AuditCheckpointSealed", business_id),
            time=self.sealed_at,
            schema_version=SCHEMA_VERSION,
        )

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Checkpoint:
        """Raises `CheckpointError` (or `EnvelopeError`) when the envelope is not a valid checkpoint."""
        return cls.from_proto(envelope.payload(audit_pb.AuditCheckpointSealed))


def seal(
    stream: str,
    first_sequence: int,
    event_hashes: Sequence[bytes],
    previous: Checkpoint | None,
    key: SigningKey,
    sealed_at: datetime,
) -> Checkpoint:
    """Builds and signs the checkpoint over ``event_hashes`` (sequences ``first_sequence`` onwards).

    Raises:
        CheckpointError: If there are no events, or the range does not follow ``previous``.
    """
    if not event_hashes:
        raise CheckpointError("a checkpoint covers at least one event")
    if previous is not None and first_sequence != previous.last_sequence + 1:
        raise CheckpointError(f"range starting at {first_sequence} does not follow {previous.label}")
    unsigned = Checkpoint(
        stream=stream,
        first_sequence=first_sequence,
        last_sequence=first_sequence + len(event_hashes) - 1,
        merkle_root=merkle.root(event_hashes),
        previous_checkpoint_hash=previous.checkpoint_hash() if previous else b"",
        event_hash_prefixes=b"".join(h[:PREFIX_BYTES] for h in event_hashes),
        key_id=key.key_id,
        key_version=key.version,
        sealed_at=sealed_at,
    )
    return replace(unsigned, signature=key.sign(unsigned.canonical_bytes()))


def signature_problem(checkpoint: Checkpoint, keys: KeyRing) -> str | None:
    """Why the checkpoint's signature does not verify with ``keys``, or None when it does."""
    key = keys.get(checkpoint.key_id)
    if key is None:
        return (
            f"signed with key {checkpoint.key_id} (version {checkpoint.key_version}), which is not among the "
            f"verifying keys [{keys.describe() or 'none'}]"
        )
    if not key.verify(checkpoint.signature, checkpoint.canonical_bytes()):
        return f"signature does not verify with key {checkpoint.key_id}"
    if key.version is not None and key.version != checkpoint.key_version:
        return f"claims key version {checkpoint.key_version}, but key {checkpoint.key_id} is version {key.version}"
    return None
