"""The auditor's use cases over a JetStream connection: verify streams, prove a transaction's events.

``fraudctl audit`` prints what these return; they raise `AuditInputError` for requests that cannot be
answered (unknown stream or transaction, a range that does not exist) and `AuditReadError` when the log cannot
be read, so nothing unread is ever reported as verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fraudshared.audit import merkle
from fraudshared.audit.checkpoint import Checkpoint
from fraudshared.audit.jetstream import AUDIT_STREAM, read_checkpoints, read_event_hashes, stream_bounds
from fraudshared.audit.keys import KeyRing
from fraudshared.audit.leaves import event_hash
from fraudshared.audit.verify import Finding, RangeError, StreamReport, StreamVerifier, chain_findings
from fraudshared.events.envelope import EnvelopeError, from_nats
from fraudshared.events.streams import default_specs

_TX_ID_RE = re.compile(r"[A-Za-z0-9_\-]+")
# Where a transaction's decision events live: (stream, subject pattern with {tx}).
TRANSACTION_EVENTS = (
    ("TRANSACTIONS", "fraud.tx.received.*.{tx}"),
    ("FEATURES", "fraud.features.computed.*.{tx}"),
    ("PREDICTIONS", "fraud.predictions.made.*.{tx}"),
)


class AuditInputError(ValueError):
    """The request names something that does not exist (stream, range, transaction)."""


def audited_stream_names() -> list[str]:
    """Every stream the notary seals (all but AUDIT), in declaration order."""
    return [spec.name for spec in default_specs() if spec.name != AUDIT_STREAM]


async def _subject_of(js: JetStreamContext, stream: str) -> str:
    subjects = (await js.stream_info(stream)).config.subjects or []
    return subjects[0] if len(subjects) == 1 else ">"


async def _checkpoints(js: JetStreamContext, stream: str) -> tuple[list[Checkpoint], list[Finding]]:
    checkpoints, findings = [], []
    for stored in await read_checkpoints(js, stream):
        if stored.checkpoint is None:
            findings.append(Finding(stream, None, f"checkpoint event at AUDIT seq {stored.audit_seq} is unreadable"))
        else:
            checkpoints.append(stored.checkpoint)
    return checkpoints, findings


async def verify_stream(
    js: JetStreamContext, stream: str, keys: KeyRing, window: tuple[int, int] | None = None
) -> StreamReport:
    """Re-reads one stream and its checkpoints and verifies hashes, roots, chain and signatures.

    Raises:
        AuditInputError: If the stream does not exist or ``window`` is not a range of it.
        fraudshared.audit.jetstream.AuditReadError: If the log cannot be read.
    """
    if stream == AUDIT_STREAM:
        raise AuditInputError("AUDIT holds the checkpoints themselves; it is verified through their chain")
    try:
        _, last = await stream_bounds(js, stream)
        subject = await _subject_of(js, stream)
    except NotFoundError:
        raise AuditInputError(f"there is no stream {stream!r}") from None
    checkpoints, findings = await _checkpoints(js, stream)
    try:
        verifier = StreamVerifier(stream, checkpoints, keys, stream_last_seq=last, window=window, findings=findings)
    except RangeError as exc:
        raise AuditInputError(str(exc)) from None
    span = verifier.read_range
    if span is not None:
        async for seq, hashed in read_event_hashes(js, stream, subject, *span):
            verifier.add(seq, hashed)
    return verifier.finish()


@dataclass
class EventProof:
    """An inclusion proof of one event in its sealed checkpoint, and whether every part of it verified."""

    stream: str
    seq: int
    event_id: str
    event_type: str
    event_hash: bytes
    checkpoint: Checkpoint | None = None
    proof: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.seq - self.checkpoint.first_sequence if self.checkpoint else -1

    @property
    def ok(self) -> bool:
        return self.checkpoint is not None and not self.problems


async def prove_transaction(js: JetStreamContext, transaction_id: str, keys: KeyRing) -> list[EventProof]:
    """Inclusion proofs of a transaction's TransactionReceived, FeatureVectorComputed and PredictionMade.

    Raises:
        AuditInputError: If the id is malformed or no event of the transaction is recorded.
        fraudshared.audit.jetstream.AuditReadError: If the log cannot be read.
    """
    if not _TX_ID_RE.fullmatch(transaction_id):
        raise AuditInputError(f"{transaction_id!r} is not a transaction id (letters, digits, '-' and '_')")
    proofs = []
    for stream, pattern in TRANSACTION_EVENTS:
        try:
            raw = await js.get_last_msg(stream, pattern.format(tx=transaction_id))
        except NotFoundError:
            continue
        try:
            envelope = from_nats(raw.headers, raw.data)
            ident, kind = envelope.id, envelope.type
        except EnvelopeError:
            ident, kind = "?", "unreadable envelope"
        proof = EventProof(stream, int(raw.seq or 0), ident, kind, event_hash(raw.headers, raw.data))
        await _prove(js, proof, keys)
        proofs.append(proof)
    if not proofs:
        raise AuditInputError(f"unknown transaction {transaction_id!r}: no event of it is recorded")
    return proofs


async def _prove(js: JetStreamContext, proof: EventProof, keys: KeyRing) -> None:
    checkpoints, findings = await _checkpoints(js, proof.stream)
    covering = [i for i, cp in enumerate(checkpoints) if cp.first_sequence <= proof.seq <= cp.last_sequence]
    if not covering:
        sealed = checkpoints[-1].last_sequence if checkpoints else 0
        proof.problems.append(f"not sealed yet: {proof.stream} is sealed up to sequence {sealed}")
        return
    index = covering[0]
    cp = proof.checkpoint = checkpoints[index]
    chain, _ = chain_findings(proof.stream, checkpoints[: index + 1], keys)
    proof.problems += [f.message for f in findings + chain]
    hashes: list[bytes] = []
    async for seq, hashed in read_event_hashes(
        js, proof.stream, await _subject_of(js, proof.stream), cp.first_sequence, cp.last_sequence
    ):
        if hashed is None:
            proof.problems.append(f"sequence {seq} of checkpoint {cp.label} is missing or unreadable")
            return
        hashes.append(hashed)
    leaves = [merkle.leaf_hash(h) for h in hashes]
    if merkle.root_from_leaf_hashes(leaves) != cp.merkle_root:
        proof.problems.append(f"the events of checkpoint {cp.label} no longer hash to its Merkle root")
    if hashes[proof.index] != proof.event_hash:
        proof.problems.append("the event changed while it was being read")
    proof.proof = merkle.inclusion_proof(proof.index, leaves)
    if not merkle.verify_inclusion(
        proof.index, cp.size, merkle.leaf_hash(proof.event_hash), proof.proof, cp.merkle_root
    ):
        proof.problems.append("the inclusion proof does not lead to the checkpoint's Merkle root")
