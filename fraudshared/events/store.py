"""Append envelopes to JetStream and read them back: the event store every service uses.

Rules (docs/events.md): every append carries ``Nats-Msg-Id`` = envelope id, so a retry inside the stream's
duplicate window returns the original sequence with ``duplicate=True`` and stores nothing; an append may
carry the expected last sequence of its subject (optimistic concurrency), and a conflict raises
`ConcurrencyError`. Transient failures (timeouts, no responders, 503) are retried a bounded number of times,
which the dedupe makes safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header, PubAck
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from fraudshared.events.envelope import Envelope, EnvelopeError, from_nats, to_nats_checked

ERR_WRONG_LAST_SEQUENCE = 10071
ERR_NO_MESSAGE_FOUND = 10037
# nats-server >= 2.11: the expected last subject sequence is checked on this subject (wildcards allowed).
EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
TRANSIENT_ERRORS = (TimeoutError, NoStreamResponseError, ServiceUnavailableError)
_FIRST_BACKOFF_S = 0.05
_LAST_SEQ_RE = re.compile(r"wrong last sequence:?\s*(\d+)")


class ConcurrencyError(Exception):
    """Another writer appended to the subject since the expected sequence was read."""

    def __init__(self, subject: str, expected: int, actual: int | None) -> None:
        self.subject, self.expected, self.actual = subject, expected, actual
        found = "unknown" if actual is None else str(actual)
        super().__init__(f"subject {subject}: expected last sequence {expected}, found {found}")


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an event landed; ``duplicate`` means it was already stored (by an earlier try) at ``seq``."""

    stream: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One item for `EventStore.append_many`."""

    envelope: Envelope
    subject: str
    expected_last_subject_seq: int | None = None
    expected_seq_subject: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An envelope as stored: stream sequence, NATS subject and the envelope."""

    seq: int
    subject: str
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class UnreadableEvent:
    """A stored message that is not a readable envelope, as a tolerant read met it (never logged as is).

    Attributes:
        stream: Stream name.
        seq: Stream sequence.
        subject: NATS subject it was published on.
        headers: Its headers as stored (may be empty).
        body: Its body as stored.
        error: Why `from_nats` refused it.
    """

    stream: str
    seq: int
    subject: str
    headers: dict[str, str]
    body: bytes
    error: EnvelopeError


OnUnreadable = Callable[[UnreadableEvent], Awaitable[None] | None]


class EventStore:
    """Event store over a JetStream context."""

    def __init__(
        self, js: JetStreamContext, *, publish_timeout: float = 2.0, attempts: int = 3, read_batch: int = 256
    ) -> None:
        """Creates a store.

        Args:
            js: JetStream context of a connected client.
            publish_timeout: Seconds to wait for one publish ack.
            attempts: Tries per append for transient errors (1 = no retry).
            read_batch: Messages fetched per request when reading.
        """
        self._js = js
        self._publish_timeout = publish_timeout
        self._attempts = attempts
        self._read_batch = read_batch

    async def append(
        self,
        envelope: Envelope,
        *,
        subject: str,
        expected_last_subject_seq: int | None = None,
        expected_seq_subject: str | None = None,
    ) -> AppendResult:
        """Appends one envelope on ``subject`` and waits for the ack.

        Args:
            envelope: The event.
            subject: NATS subject (selects the stream), e.g. ``fraud.tx.received.7``.
            expected_last_subject_seq: If given, the append succeeds only when the last event on ``subject``
                has this stream sequence (0 = no event on the subject yet).
            expected_seq_subject: Check ``expected_last_subject_seq`` against this subject instead of
                ``subject``; wildcards allowed, e.g. ``fraud.tx.received.*.<id>`` claims an id on every partition.

        Returns:
            Stream, sequence, and whether it was a duplicate of an earlier append with the same id.

        Raises:
            ConcurrencyError: If the subject's last sequence is not ``expected_last_subject_seq`` (unless the
                last event there is this envelope itself, which is reported as a duplicate).
            fraudshared.events.envelope.EnvelopeError: If the envelope would not read back (nothing is appended).
            nats.js.errors.Error: On other JetStream errors, or transient ones after the last attempt.
        """
        headers, body = to_nats_checked(envelope)
        headers[Header.MSG_ID] = envelope.id
        if expected_last_subject_seq is not None:
            headers[Header.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected_last_subject_seq)
            if expected_seq_subject is not None:
                headers[EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = expected_seq_subject
        guarded = expected_seq_subject or subject
        try:
            ack = await self._publish(subject, body, headers)
        except APIError as exc:
            if exc.err_code != ERR_WRONG_LAST_SEQUENCE or expected_last_subject_seq is None:
                raise
            # The server checks the expected sequence before dedupe, so a retry of an append that did land
            # fails here: if the subject's last event is this very envelope, report it as a duplicate.
            already = await self._last_is(subject, envelope.id, guarded)
            if already is not None:
                return already
            match = _LAST_SEQ_RE.search(exc.description or "")
            actual = int(match.group(1)) if match else None
            raise ConcurrencyError(guarded, expected_last_subject_seq, actual) from exc
        return AppendResult(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> PubAck:
        # First try without tenacity: its machinery costs about half a publish, and most appends succeed.
        try:
            return await self._js.publish(subject, body, timeout=self._publish_timeout, headers=headers)
        except TRANSIENT_ERRORS:
            if self._attempts <= 1:
                raise
        await asyncio.sleep(_FIRST_BACKOFF_S)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts - 1),
            wait=wait_exponential_jitter(multiplier=_FIRST_BACKOFF_S, max=1.0, jitter=_FIRST_BACKOFF_S),
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._js.publish(subject, body, timeout=self._publish_timeout, headers=headers)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _last_is(self, subject: str, msg_id: str, guarded: str) -> AppendResult | None:
        stream = await self._js.find_stream_name_by_subject(subject)
        try:
            last = await self._js.get_last_msg(stream, guarded)
        except NotFoundError:
            return None
        ids = [value for key, value in (last.headers or {}).items() if key.lower() == Header.MSG_ID.lower()]
        return AppendResult(stream, int(last.seq or 0), duplicate=True) if ids == [msg_id] else None

    async def append_many(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        """Publishes all items concurrently and awaits every ack (the hot path's one round of waiting).

        Items are sent in the given order on one connection, so items on the same stream get increasing
        sequences unless one had to be retried. Every publish is awaited before any error is raised; the
        first error (in item order) is raised, and a re-run is safe because ids dedupe.

        Returns:
            One result per item, in item order.
        """
        outcomes = await asyncio.gather(
            *(
                self.append(
                    i.envelope,
                    subject=i.subject,
                    expected_last_subject_seq=i.expected_last_subject_seq,
                    expected_seq_subject=i.expected_seq_subject,
                )
                for i in items
            ),
            return_exceptions=True,
        )
        results: list[AppendResult] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    async def last_subject_seq(self, stream: str, subject: str) -> int:
        """Stream sequence of the last event on ``subject`` (0 if there is none).

        Raises:
            nats.js.errors.NotFoundError: If the stream does not exist.
        """
        try:
            message = await self._js.get_last_msg(stream, subject)
        except NotFoundError as exc:
            if exc.err_code == ERR_NO_MESSAGE_FOUND:
                return 0
            raise
        return int(message.seq or 0)

    async def read_subject(
        self, stream: str, subject_filter: str, from_seq: int = 1, *, on_unreadable: OnUnreadable | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Yields events on ``subject_filter`` (wildcards allowed) from ``from_seq`` in stream order.

        Reads through a short-lived ordered ephemeral pull consumer without acks, up to the stream's last
        sequence at the time of the call, then stops (events appended meanwhile are not included). To stop
        early, wrap it in ``contextlib.aclosing`` so the consumer is deleted at once (else it expires in 30 s).

        Args:
            stream: Stream name.
            subject_filter: NATS subject filter.
            from_seq: First stream sequence to read.
            on_unreadable: Tolerant mode: a message that is not a readable envelope is passed to this callback
                (awaited if it returns an awaitable) and skipped, and reading goes on. Without it such a
                message raises, so no caller skips an event without deciding to.

        Raises:
            nats.js.errors.NotFoundError: If the stream does not exist.
            fraudshared.events.envelope.EnvelopeError: If a stored message is not a valid envelope and no
                ``on_unreadable`` was given.
        """
        end_seq = (await self._js.stream_info(stream)).state.last_seq
        if end_seq < max(from_seq, 1):
            return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(from_seq, 1),
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        sub = await self._js.pull_subscribe(subject_filter, stream=stream, config=config)
        try:
            if (await sub.consumer_info()).num_pending == 0:
                return
            while True:
                for msg in await sub.fetch(self._read_batch, timeout=5.0):
                    meta = msg.metadata
                    seq = meta.sequence.stream
                    if seq > end_seq:
                        return
                    try:
                        envelope = from_nats(msg.headers, msg.data)
                    except EnvelopeError as exc:
                        if on_unreadable is None:
                            raise
                        unreadable = UnreadableEvent(stream, seq, msg.subject, dict(msg.headers or {}), msg.data, exc)
                        outcome = on_unreadable(unreadable)
                        if outcome is not None:
                            await outcome
                    else:
                        yield StoredEvent(seq=seq, subject=msg.subject, envelope=envelope)
                    if seq == end_seq or meta.num_pending == 0:
                        return
        finally:
            await sub.unsubscribe()
            if config.name:
                await asyncio.shield(self._delete_consumer(stream, config.name))

    async def _delete_consumer(self, stream: str, name: str) -> None:
        with contextlib.suppress(NotFoundError, TimeoutError):  # else it expires after inactive_threshold
            await self._js.delete_consumer(stream, name)
