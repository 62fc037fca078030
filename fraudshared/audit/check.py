"""The auditor's use cases over a JetStream connection: verify streams, prove a transaction's events.

``fraudctl audit`` prints what these return; they raise `AuditInputError` for requests that cannot be
answered (unknown stream or transaction, a range that does not exist) and `AuditReadError` when the log cannot
be read, so nothing unread is ever reported as verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.audit import merkle
from fraudshared.audit.checkpoint import Checkpoint
from fraudshared.audit.jetstream import (
    AUDIT_STREAM,
    AuditReadError,
    last_checkpoint,
    read_checkpoints,
    read_event_hashes,
    stream_bounds,
)
from fraudshared.audit.keys import KeyRing
from fraudshared.audit.leaves import event_hash
from fraudshared.audit.records import TRANSACTION_EVENTS, TRANSACTION_ID_RE, Record, read_record
from fraudshared.audit.verify import Finding, RangeError, StreamReport, StreamVerifier, chain_findings
from fraudshared.events.once import RecordUnreadable
from fraudshared.events.streams import default_specs


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
    """An inclusion proof of one event in its sealed checkpoint, and whether every part of it verified.

    A transaction's event that is not stored at all is an EventProof with ``seq`` 0 and a problem saying so;
    ``conflicts`` are later events on the same once-only subject (the proof is of the first, the record).
    """

    stream: str
    seq: int
    event_id: str
    event_type: str
    event_hash: bytes
    checkpoint: Checkpoint | None = None
    proof: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.seq - self.checkpoint.first_sequence if self.checkpoint else -1

    @property
    def ok(self) -> bool:
        return self.checkpoint is not None and not self.problems and not self.conflicts


def check_transaction_id(transaction_id: str) -> None:
    """Raises `AuditInputError` unless ``transaction_id`` is one the contract admits (no subject wildcards)."""
    if not TRANSACTION_ID_RE.fullmatch(transaction_id):
        raise AuditInputError(f"{transaction_id!r} is not a transaction id (letters, digits, ':', '-' and '_')")


async def recorded_decision(js: JetStreamContext, transaction_id: str) -> Record[tx_events.PredictionMade]:
    """The PredictionMade recorded for ``transaction_id`` (the first on its subject), with any conflicts.

    Raises:
        AuditInputError: If the id is malformed or no decision of it is recorded.
        AuditReadError: If the recorded decision cannot be read (its stream and sequence are named).
    """
    check_transaction_id(transaction_id)
    found = await read_record(js, "PREDICTIONS", subjects.prediction_made_any(transaction_id), tx_events.PredictionMade)
    if found.message is None:
        raise AuditInputError(f"unknown transaction {transaction_id!r}: no PredictionMade is recorded")
    if found.event is None:
        raise AuditReadError(f"the recorded decision of {transaction_id}: {found.unreadable}")
    return found


async def prove_transaction(js: JetStreamContext, transaction_id: str, keys: KeyRing) -> list[EventProof]:
    """Inclusion proofs of a transaction's TransactionReceived, FeatureVectorComputed and PredictionMade.

    Each is the first event on its subject; one that is not stored, cannot be read, or has a later
    conflicting event is a proof with problems (so the transaction is not proven).

    Raises:
        AuditInputError: If the id is malformed or no event of the transaction is recorded.
        fraudshared.audit.jetstream.AuditReadError: If the log cannot be read.
    """
    check_transaction_id(transaction_id)
    proofs = []
    for stream, message_type, subject_of in TRANSACTION_EVENTS:
        record = await read_record(js, stream, subject_of(transaction_id), message_type)
        kind = message_type.DESCRIPTOR.full_name
        if record.message is None:
            proofs.append(EventProof(stream, 0, "?", kind, b"", problems=[await _missing(js, stream, kind)]))
            continue
        stored = record.message
        proof = EventProof(stream, stored.seq, "?", kind, event_hash(stored.headers, stored.data))
        try:
            envelope = stored.envelope()
            proof.event_id, proof.event_type = envelope.id, envelope.type
        except RecordUnreadable:
            pass  # named by record.unreadable below
        if record.unreadable:
            proof.problems.append(record.unreadable)
        proof.conflicts = [str(c) for c in record.conflicts]
        await _prove(js, proof, keys)
        proofs.append(proof)
    if all(p.seq == 0 for p in proofs):
        raise AuditInputError(f"unknown transaction {transaction_id!r}: no event of it is recorded")
    return proofs


async def _missing(js: JetStreamContext, stream: str, kind: str) -> str:
    """Why an event may be missing: the stream's interior gaps, or an end short of what is sealed."""
    state = (await js.stream_info(stream)).state
    first, last = int(state.first_seq or 0), int(state.last_seq or 0)
    text = f"{stream}: no {kind.rsplit('.', 1)[-1]} of this transaction is stored"
    gaps = max(0, last - first + 1 - int(state.messages or 0)) if last >= first else 0
    if gaps:
        text += f"; {stream} has {gaps} missing sequence(s)"
    sealed = await last_checkpoint(js, stream)
    if sealed is not None and sealed.checkpoint is not None and sealed.checkpoint.last_sequence > last:
        text += f"; {stream} ends at sequence {last}, but checkpoints seal it up to {sealed.checkpoint.last_sequence}"
    return text + (f" (`audit verify --stream {stream}` names each sequence)" if text.count(";") else "")


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
            proof.problems.append(
                f"{proof.stream} seq {seq} (sealed in checkpoint {cp.label}) is missing or unreadable"
            )
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
