"""The notary's chain (domain and loop, over an in-memory log) and the pure stream verifier."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from fraudshared.audit.checkpoint import Checkpoint, seal
from fraudshared.audit.jetstream import StoredCheckpoint
from fraudshared.audit.keys import KeyRing, SigningKey, signing_key_from_seed_hex
from fraudshared.audit.verify import RangeError, StreamVerifier, chain_findings
from fraudshared.events.store import AppendResult, ConcurrencyError
from services.governance.notary.domain.chain import SequenceGap, StreamChain
from services.governance.notary.service import Notary, NotaryConfig

KEY = signing_key_from_seed_hex("33" * 32, version=1)
RING = KeyRing([KEY.verifying()])
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def h(seq: int, salt: str = "") -> bytes:
    return hashlib.sha256(f"{salt}event-{seq}".encode()).digest()


# ---- domain ----------------------------------------------------------------------------------------------


def test_chain_seals_every_n_or_after_t_and_links_checkpoints() -> None:
    chain = StreamChain("TRANSACTIONS")
    for seq in range(1, 8):
        chain.add(seq, h(seq), now=100.0)
    assert chain.due(100.0, every_n=5, every_s=10) == 5
    first = chain.seal(5, KEY, AT)
    assert (first.first_sequence, first.last_sequence, first.previous_checkpoint_hash) == (1, 5, b"")
    chain.sealed(first, audit_seq=3, now=101.0)
    assert (chain.first_pending, chain.next_seq, chain.audit_seq) == (6, 8, 3)
    assert chain.due(105.0, every_n=5, every_s=10) == 0
    assert chain.due(111.0, every_n=5, every_s=10) == 2
    second = chain.seal(2, KEY, AT)
    assert second.previous_checkpoint_hash == first.checkpoint_hash()
    chain.sealed(second, audit_seq=9, now=111.0)
    assert chain.pending == [] and chain.pending_since is None


def test_chain_refuses_gaps_and_unreadable_events() -> None:
    chain = StreamChain("FEATURES")
    chain.add(1, h(1), 0.0)
    with pytest.raises(SequenceGap, match="FEATURES sequence 2 is missing"):
        chain.add(3, h(3), 0.0)
    with pytest.raises(SequenceGap, match="sequence 2"):
        chain.add(2, None, 0.0)
    with pytest.raises(ValueError, match="already read"):
        chain.add(1, h(1), 0.0)


# ---- the notary loop over an in-memory log -----------------------------------------------------------------


class FakeLog:
    """Streams of event hashes and an AUDIT subject per stream, with the expected-last-sequence rule."""

    def __init__(self) -> None:
        self.events: dict[str, list[bytes | None]] = {}
        self.audit: list[tuple[str, Checkpoint]] = []

    async def stream_end(self, stream: str) -> int | None:
        return len(self.events[stream]) if stream in self.events else None

    async def event_hashes(
        self, stream: str, subject: str, start: int, end: int
    ) -> AsyncIterator[tuple[int, bytes | None]]:
        for seq in range(start, end + 1):
            await asyncio.sleep(0)
            yield seq, self.events[stream][seq - 1]

    def _last(self, stream: str) -> int:
        return max((i + 1 for i, (s, _) in enumerate(self.audit) if s == stream), default=0)

    async def last_checkpoint(self, stream: str) -> StoredCheckpoint | None:
        seq = self._last(stream)
        return StoredCheckpoint(seq, self.audit[seq - 1][1]) if seq else None

    async def append_checkpoint(self, checkpoint: Checkpoint, expected_audit_seq: int) -> AppendResult:
        await asyncio.sleep(0.001)  # let racing notaries interleave
        last = self._last(checkpoint.stream)
        if last != expected_audit_seq:
            raise ConcurrencyError(f"fraud.audit.checkpoints.{checkpoint.stream}", expected_audit_seq, last)
        self.audit.append((checkpoint.stream, checkpoint))
        return AppendResult("AUDIT", len(self.audit), duplicate=False)

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        return [cp for s, cp in self.audit if s == stream]


class FakeKeys:
    def __init__(self, key: SigningKey) -> None:
        self.key = key

    async def current(self) -> SigningKey:
        return self.key


async def run_for(notary: Notary, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(notary.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


def verify(log: FakeLog, stream: str, window: tuple[int, int] | None = None) -> StreamVerifier:
    verifier = StreamVerifier(
        stream, log.checkpoints(stream), RING, stream_last_seq=len(log.events[stream]), window=window
    )
    span = verifier.read_range
    if span:
        for seq in range(span[0], span[1] + 1):
            verifier.add(seq, log.events[stream][seq - 1] if seq <= len(log.events[stream]) else None)
    return verifier


async def test_notary_seals_by_count_then_by_time_and_restarts_without_gaps() -> None:
    log = FakeLog()
    log.events["TRANSACTIONS"] = [h(i) for i in range(1, 26)]
    log.events["LABELS"] = [h(i, "l") for i in range(1, 4)]
    config = NotaryConfig(every_n=10, every_s=0.15)
    streams = [("TRANSACTIONS", "fraud.tx.>"), ("LABELS", "fraud.labels.>"), ("MONITOR", "fraud.monitor.>")]

    await run_for(Notary(log, FakeKeys(KEY), streams, config), 0.5)
    ranges = [(cp.first_sequence, cp.last_sequence) for cp in log.checkpoints("TRANSACTIONS")]
    assert ranges == [(1, 10), (11, 20), (21, 25)]
    assert [(cp.first_sequence, cp.last_sequence) for cp in log.checkpoints("LABELS")] == [(1, 3)]
    assert log.checkpoints("MONITOR") == []  # a stream that does not exist yet is waited for

    # Restart: new events, a new notary, and a rotated key; it continues at 26.
    log.events["TRANSACTIONS"] += [h(i) for i in range(26, 38)]
    rotated = signing_key_from_seed_hex("44" * 32, version=2)
    await run_for(Notary(log, FakeKeys(rotated), streams, config), 0.5)
    ranges = [(cp.first_sequence, cp.last_sequence) for cp in log.checkpoints("TRANSACTIONS")]
    assert ranges == [(1, 10), (11, 20), (21, 25), (26, 35), (36, 37)]
    assert log.checkpoints("TRANSACTIONS")[-1].key_version == 2

    ring = KeyRing([KEY.verifying(), rotated.verifying()])
    findings, bad = chain_findings("TRANSACTIONS", log.checkpoints("TRANSACTIONS"), ring)
    assert findings == [] and bad == set()


async def test_two_notaries_racing_never_fork_the_chain() -> None:
    log = FakeLog()
    log.events["PREDICTIONS"] = [h(i) for i in range(1, 60)]
    config = NotaryConfig(every_n=7, every_s=0.1)
    streams = [("PREDICTIONS", "fraud.predictions.>")]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(Notary(log, FakeKeys(KEY), streams, config).run(stop)) for _ in range(2)]
    await asyncio.sleep(0.6)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)

    checkpoints = log.checkpoints("PREDICTIONS")
    assert checkpoints[-1].last_sequence == 59
    assert chain_findings("PREDICTIONS", checkpoints, RING) == ([], set())


async def test_notary_stops_at_a_missing_sequence() -> None:
    log = FakeLog()
    log.events["MODELS"] = [h(1), h(2), None, h(4)]
    await run_for(
        Notary(log, FakeKeys(KEY), [("MODELS", "fraud.models.>")], NotaryConfig(every_n=2, every_s=0.05)), 0.3
    )
    assert [(cp.first_sequence, cp.last_sequence) for cp in log.checkpoints("MODELS")] == [(1, 2)]


# ---- the verifier ------------------------------------------------------------------------------------------


def sealed_log(n: int = 30, every: int = 10) -> FakeLog:
    log = FakeLog()
    log.events["S"] = [h(i) for i in range(1, n + 1)]
    previous = None
    for first in range(1, n + 1, every):
        hashes = log.events["S"][first - 1 : first - 1 + every]
        previous = seal("S", first, [x for x in hashes if x], previous, KEY, AT)
        log.audit.append(("S", previous))
    return log


def test_clean_stream_verifies_and_reports_the_unsealed_tail() -> None:
    log = sealed_log()
    log.events["S"] += [h(31), h(32)]
    report = verify(log, "S").finish()
    assert report.ok, report.findings
    assert (report.checkpoints_verified, report.events_verified, report.events_read) == (3, 30, 32)
    assert report.unsealed == (31, 32)


def test_an_altered_event_is_named_by_sequence() -> None:
    log = sealed_log()
    log.events["S"][16] = h(999)  # seq 17
    report = verify(log, "S").finish()
    assert not report.ok
    assert [(f.seq, "altered" in f.message) for f in report.findings] == [(17, True)]
    assert "S[11..20]" in report.findings[0].message
    assert report.checkpoints_verified == 2


def test_missing_and_truncated_events_are_named() -> None:
    log = sealed_log()
    log.events["S"][4] = None  # seq 5 unreadable
    del log.events["S"][27:]  # 28..30 gone
    report = verify(log, "S").finish()
    seqs = sorted(f.seq for f in report.findings if f.seq)
    assert 5 in seqs and {28, 29, 30} <= set(seqs)
    assert any("events 28..30 were removed" in f.message for f in report.findings)
    assert report.checkpoints_verified == 1


def test_a_removed_or_forged_checkpoint_breaks_the_chain() -> None:
    log = sealed_log()
    del log.audit[1]
    report = verify(log, "S").finish()
    messages = " ".join(str(f) for f in report.findings)
    assert "starts at 21, expected 11 (gap" in messages and "chain is broken" in messages
    assert report.checkpoints_verified == 1

    other = signing_key_from_seed_hex("55" * 32, version=1)
    forged = sealed_log()
    forged.audit[2] = ("S", seal("S", 21, forged.events["S"][20:], forged.audit[1][1], other, AT))
    report = verify(forged, "S").finish()
    assert any(f"signed with key {other.key_id}" in f.message for f in report.findings)
    assert report.checkpoints_verified == 2


def test_windows_verify_only_overlapping_checkpoints_and_bad_ranges_are_refused() -> None:
    log = sealed_log()
    log.events["S"][2] = h(999)  # outside the window: not read, not reported
    verifier = verify(log, "S", window=(12, 25))
    assert verifier.read_range == (11, 30)
    report = verifier.finish()
    assert report.ok and (report.checkpoints_checked, report.events_verified) == (2, 20)
    for window in ((0, 5), (9, 3), (5, 31)):
        with pytest.raises(RangeError, match=r"does not exist in S \(sequences 1..30\)"):
            StreamVerifier("S", log.checkpoints("S"), RING, stream_last_seq=30, window=window)
