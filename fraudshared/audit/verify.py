"""Verification of one stream against its checkpoints; pure (the caller feeds it what it read).

Usage: build a `StreamVerifier` with the stream's checkpoints (in chain order) and key ring, read the events of
`StreamVerifier.read_range` in sequence order, pass *every* sequence of that range to `add` (with None when
the event is missing or unreadable), then call `finish`. Chain and signatures are checked for every
checkpoint; Merkle roots for the checkpoints that overlap the requested window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fraudshared.audit import merkle
from fraudshared.audit.checkpoint import PREFIX_BYTES, Checkpoint, signature_problem
from fraudshared.audit.keys import KeyRing
from fraudshared.audit.leaves import UnreadableHash

MAX_FINDINGS_PER_CHECKPOINT = 20


class RangeError(ValueError):
    """The requested sequence range does not exist in the stream."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that did not verify; ``seq`` is the stream sequence when one event is to blame."""

    stream: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.stream} seq {self.seq}" if self.seq is not None else self.stream
        return f"{where}: {self.message}"


@dataclass
class StreamReport:
    """What was verified in one stream."""

    stream: str
    stream_last_seq: int
    window: tuple[int, int] | None
    checkpoints_total: int = 0
    checkpoints_checked: int = 0
    checkpoints_verified: int = 0
    events_read: int = 0
    events_verified: int = 0
    unsealed: tuple[int, int] | None = None
    findings: list[Finding] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)  # in the window: not envelopes, verified by raw hash

    @property
    def ok(self) -> bool:
        """Everything checked verified (unsealed events are not a failure)."""
        return not self.findings and self.checkpoints_verified == self.checkpoints_checked


def chain_findings(stream: str, checkpoints: Sequence[Checkpoint], keys: KeyRing) -> tuple[list[Finding], set[int]]:
    """Checks links, contiguity and signatures of a stream's checkpoints (no events needed).

    Returns:
        The findings, and the indices of checkpoints that failed a check.
    """
    findings: list[Finding] = []
    bad: set[int] = set()
    previous: Checkpoint | None = None
    for index, cp in enumerate(checkpoints):
        problems = []
        if cp.stream != stream:
            problems.append(f"belongs to stream {cp.stream}")
        expected_first = previous.last_sequence + 1 if previous else 1
        if cp.first_sequence != expected_first:
            kind = "gap" if cp.first_sequence > expected_first else "overlap"
            problems.append(f"starts at {cp.first_sequence}, expected {expected_first} ({kind} in the sealed ranges)")
        expected_link = previous.checkpoint_hash() if previous else b""
        if cp.previous_checkpoint_hash != expected_link:
            what = "the previous checkpoint's hash" if previous else "empty (first checkpoint)"
            problems.append(
                f"previous_checkpoint_hash is not {what}: the chain is broken (checkpoint missing or forged)"
            )
        signature = signature_problem(cp, keys)
        if signature:
            problems.append(signature)
        for problem in problems:
            findings.append(Finding(stream, None, f"checkpoint {cp.label}: {problem}"))
        if problems:
            bad.add(index)
        previous = cp
    return findings, bad


class StreamVerifier:
    """Streams one stream's events through its checkpoints (module docstring)."""

    def __init__(
        self,
        stream: str,
        checkpoints: Sequence[Checkpoint],
        keys: KeyRing,
        *,
        stream_last_seq: int,
        window: tuple[int, int] | None = None,
        findings: Sequence[Finding] = (),
    ) -> None:
        """Checks the chain and plans the read.

        Args:
            stream: Stream name.
            checkpoints: Its checkpoints in the order they were appended.
            keys: Verifying keys.
            stream_last_seq: The stream's last sequence now.
            window: Sequences to verify (inclusive); the whole stream when None.
            findings: Problems already found by the caller (e.g. an unreadable checkpoint event).

        Raises:
            RangeError: If ``window`` does not exist in the stream or its checkpoints.
        """
        self._stream = stream
        self._checkpoints = list(checkpoints)
        sealed_end = self._checkpoints[-1].last_sequence if self._checkpoints else 0
        known_end = max(stream_last_seq, sealed_end)
        if window is not None:
            lo, hi = window
            if lo < 1 or lo > hi or hi > known_end:
                raise RangeError(
                    f"range {lo}..{hi} does not exist in {stream}"
                    + (f" (sequences 1..{known_end})" if known_end else " (the stream is empty)")
                )
        lo, hi = window or (1, known_end)
        self._window = (lo, hi)
        self.report = StreamReport(stream, stream_last_seq, window, checkpoints_total=len(self._checkpoints))
        self.report.findings.extend(findings)
        chain, self._bad = chain_findings(stream, self._checkpoints, keys)
        self.report.findings.extend(chain)
        if sealed_end > stream_last_seq:
            self.report.findings.append(
                Finding(
                    stream,
                    stream_last_seq + 1,
                    f"the stream ends at {stream_last_seq} but checkpoints seal up to {sealed_end}: "
                    f"events {stream_last_seq + 1}..{sealed_end} were removed",
                )
            )
        self._targets = [
            i for i, cp in enumerate(self._checkpoints) if cp.last_sequence >= lo and cp.first_sequence <= hi
        ]
        self.report.checkpoints_checked = len(self._targets)
        if hi > sealed_end:
            self.report.unsealed = (max(lo, sealed_end + 1), hi)
        start = min([lo, *(self._checkpoints[i].first_sequence for i in self._targets)])
        end = max([hi, *(self._checkpoints[i].last_sequence for i in self._targets)])
        self._range = (start, end) if hi >= 1 else None
        self._next = start
        self._cursor = 0  # index into _targets
        self._hashes: list[bytes | None] = []

    @property
    def read_range(self) -> tuple[int, int] | None:
        """Sequences to read (inclusive), or None when there is nothing to read."""
        return self._range

    def add(self, seq: int, event_hash: bytes | None) -> None:
        """The next sequence of `read_range` and its event hash (None: missing or unreadable)."""
        if seq != self._next:
            raise ValueError(f"expected sequence {self._next}, got {seq}")
        self._next += 1
        if event_hash is not None:
            self.report.events_read += 1
        if isinstance(event_hash, UnreadableHash) and self._window[0] <= seq <= self._window[1]:
            self.report.unreadable.append(seq)
        cp = self._current()
        if cp is None or seq < cp.first_sequence:
            unsealed = self.report.unsealed
            if event_hash is None and unsealed and unsealed[0] <= seq <= unsealed[1]:
                self.report.findings.append(Finding(self._stream, seq, "missing or unreadable (not yet sealed)"))
            return
        self._hashes.append(event_hash)
        if seq == cp.last_sequence:
            self._check(self._targets[self._cursor], cp)
            self._hashes = []
            self._cursor += 1

    def finish(self) -> StreamReport:
        """The report; raises if not every sequence of `read_range` was added."""
        if self._range is not None and self._next != self._range[1] + 1:
            raise ValueError(f"verification of {self._stream} stopped at sequence {self._next - 1}")
        return self.report

    def _current(self) -> Checkpoint | None:
        return self._checkpoints[self._targets[self._cursor]] if self._cursor < len(self._targets) else None

    def _check(self, index: int, cp: Checkpoint) -> None:
        if len(self._hashes) != cp.size:  # overlapping ranges (already a chain finding): nothing to compare
            self.report.findings.append(Finding(self._stream, None, f"checkpoint {cp.label}: range overlaps another"))
            return
        missing = [cp.first_sequence + i for i, h in enumerate(self._hashes) if h is None]
        if missing:
            self._add_limited(
                [Finding(self._stream, s, f"missing or unreadable (sealed in checkpoint {cp.label})") for s in missing]
            )
            return
        hashes = [h for h in self._hashes if h is not None]
        if merkle.root(hashes) == cp.merkle_root:
            if index not in self._bad:
                self.report.checkpoints_verified += 1
                self.report.events_verified += cp.size
            return
        changed = [
            Finding(
                self._stream,
                cp.first_sequence + i,
                f"event hash {h[:PREFIX_BYTES].hex()}... differs from the one sealed in checkpoint {cp.label} "
                f"({cp.prefix_at(cp.first_sequence + i).hex()}...): the event was altered",
            )
            for i, h in enumerate(hashes)
            if h[:PREFIX_BYTES] != cp.prefix_at(cp.first_sequence + i)
        ]
        if not changed:
            changed = [Finding(self._stream, None, f"checkpoint {cp.label}: Merkle root does not match its events")]
        self._add_limited(changed)

    def _add_limited(self, findings: list[Finding]) -> None:
        self.report.findings.extend(findings[:MAX_FINDINGS_PER_CHECKPOINT])
        if len(findings) > MAX_FINDINGS_PER_CHECKPOINT:
            more = len(findings) - MAX_FINDINGS_PER_CHECKPOINT
            self.report.findings.append(Finding(self._stream, None, f"... and {more} more in the same checkpoint"))
