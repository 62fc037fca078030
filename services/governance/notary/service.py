"""The notary's loop: per stream, read new events in order and seal a checkpoint every N events or T seconds.

Off the hot path: it only reads the streams (an ephemeral consumer per batch) and appends to AUDIT. After a
restart it reads each stream's last checkpoint and continues at the sequence after it, so no range is left
out or sealed twice. Appends carry the AUDIT subject's expected last sequence: when two notaries run, one
wins each range and the other re-reads the chain instead of forking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from fraudshared.audit.checkpoint import Checkpoint
from fraudshared.audit.jetstream import StoredCheckpoint
from fraudshared.audit.keys import SigningKey
from fraudshared.config import ConfigError, EnvConfig, env_field
from fraudshared.events.store import AppendResult, ConcurrencyError
from fraudshared.events.streams import default_specs
from fraudshared.telemetry import get_logger
from services.governance.notary.domain.chain import SequenceGap, StreamChain

AUDIT_STREAM = "AUDIT"
log = get_logger(__name__)


@dataclass(frozen=True)
class NotaryConfig(EnvConfig):
    """When to seal: every N events (``FRAUD_NOTARY_EVERY_N``) or T seconds (``FRAUD_NOTARY_EVERY_S``).

    Attributes:
        every_n: Events per checkpoint at most; a full batch is sealed at once.
        every_s: Seconds an event may wait unsealed before a (smaller) checkpoint is sealed.
        read_batch: Events read per consumer (catching up after a restart reads in batches of this size).
    """

    every_n: int = env_field("FRAUD_NOTARY_EVERY_N", 1000)
    every_s: float = env_field("FRAUD_NOTARY_EVERY_S", 10.0)
    read_batch: int = env_field("FRAUD_NOTARY_READ_BATCH", 20000)

    def __post_init__(self) -> None:
        if self.every_n < 1:
            raise ConfigError(f"FRAUD_NOTARY_EVERY_N must be >= 1, got {self.every_n}")
        if not self.every_s > 0:
            raise ConfigError(f"FRAUD_NOTARY_EVERY_S must be > 0, got {self.every_s}")
        if self.read_batch < 1:
            raise ConfigError(f"FRAUD_NOTARY_READ_BATCH must be >= 1, got {self.read_batch}")


class NotaryLog(Protocol):
    async def stream_end(self, stream: str) -> int | None: ...

    def event_hashes(
        self, stream: str, subject: str, start: int, end: int
    ) -> AsyncIterator[tuple[int, bytes | None]]: ...

    async def last_checkpoint(self, stream: str) -> StoredCheckpoint | None: ...

    async def all_checkpoints(self, stream: str) -> list[StoredCheckpoint]: ...

    async def append_checkpoint(self, checkpoint: Checkpoint, expected_audit_seq: int) -> AppendResult: ...


class SigningKeys(Protocol):
    async def current(self) -> SigningKey: ...


class Resync(Exception):
    """Another notary sealed (or the chain on AUDIT changed): start again from the last checkpoint."""


def audited_streams() -> list[tuple[str, str]]:
    """``(stream, subject filter)`` of every stream the notary seals: all but AUDIT, in declaration order."""
    return [(spec.name, spec.subjects[0]) for spec in default_specs() if spec.name != AUDIT_STREAM]


class Notary:
    """Seals every stream in ``streams``; `run` until the stop event is set."""

    def __init__(
        self,
        log_port: NotaryLog,
        keys: SigningKeys,
        streams: Sequence[tuple[str, str]],
        config: NotaryConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry_s: float = 5.0,
    ) -> None:
        self._log = log_port
        self._keys = keys
        self._streams = list(streams)
        self._config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._retry_s = retry_s
        self._poll_s = max(0.02, min(1.0, config.every_s / 4))
        self.sealed_up_to: dict[str, int] = {}  # for tests and status: last sealed sequence per stream

    async def run(self, stop: asyncio.Event) -> None:
        """Follows every stream concurrently until ``stop`` is set."""
        await asyncio.gather(*(self._follow(stream, subject, stop) for stream, subject in self._streams))

    async def _follow(self, stream: str, subject: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._follow_once(stream, subject, stop)
            except Resync as exc:
                log.info("notary %s: %s; re-reading the chain", stream, exc)
            except SequenceGap as exc:
                log.error("notary: %s", exc)
                await _wait(stop, max(self._retry_s, 6 * self._config.every_s))
            except Exception:
                log.exception("notary %s failed; retrying in %.1fs", stream, self._retry_s)
                await _wait(stop, self._retry_s)

    async def _chain(self, stream: str) -> StreamChain:
        stored = await self._log.last_checkpoint(stream)
        if stored is None:
            return StreamChain(stream)
        if stored.checkpoint is None:
            # Something that is not a checkpoint was put on the chain's subject (AUDIT is append-only, so it
            # stays): chain on from the last readable checkpoint, guarded on the subject's real last sequence.
            # `audit verify` reports the unreadable event; the notary must not stop sealing over it.
            readable = [s.checkpoint for s in await self._log.all_checkpoints(stream) if s.checkpoint is not None]
            log.error(
                "notary %s: the event at AUDIT seq %d is not a readable checkpoint; chaining on from %s",
                stream, stored.audit_seq, readable[-1].label if readable else "the start",
            )  # fmt: skip
            return StreamChain(stream, last=readable[-1] if readable else None, audit_seq=stored.audit_seq)
        return StreamChain(stream, last=stored.checkpoint, audit_seq=stored.audit_seq)

    async def _follow_once(self, stream: str, subject: str, stop: asyncio.Event) -> None:
        chain = await self._chain(stream)
        self.sealed_up_to[stream] = chain.first_pending - 1
        log.info("notary %s: continuing at sequence %d", stream, chain.first_pending)
        while not stop.is_set():
            end = await self._log.stream_end(stream)
            if end is not None and end >= chain.next_seq:
                upto = min(end, chain.next_seq + self._config.read_batch - 1)
                async for seq, event_hash in self._log.event_hashes(stream, subject, chain.next_seq, upto):
                    chain.add(seq, event_hash, self._clock())
                    if len(chain.pending) >= self._config.every_n:
                        await self._seal(chain, self._config.every_n)
                if upto < end:
                    continue  # catching up: read the next full batch at once
            count = chain.due(self._clock(), self._config.every_n, self._config.every_s)
            if count:
                await self._seal(chain, count)
            else:
                # Caught up: wait before reading again, so a busy stream is read in batches, not one consumer
                # per handful of events (each read opens a consumer; the notary is off the hot path).
                await _wait(stop, self._poll_s)

    async def _seal(self, chain: StreamChain, count: int) -> None:
        checkpoint = chain.seal(count, await self._keys.current(), self._wall_clock())
        try:
            result = await self._log.append_checkpoint(checkpoint, chain.audit_seq)
        except ConcurrencyError as exc:
            raise Resync(f"another checkpoint was appended first ({exc})") from None
        if result.duplicate:
            raise Resync(f"checkpoint {checkpoint.label} was already sealed")
        chain.sealed(checkpoint, result.seq, self._clock())
        self.sealed_up_to[chain.stream] = checkpoint.last_sequence
        log.debug("notary sealed %s (AUDIT seq %d)", checkpoint.label, result.seq)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
