"""The retrying client a card network would run in front of ScoreTransaction, and what each request went through.

On UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED it sends the same request again (same transaction id,
so the platform must answer a retry with the decision it already recorded) after a capped exponential backoff
with jitter, until it gets an answer or its give-up time has passed since the request was due. Any other
status is final: retrying INVALID_ARGUMENT or UNKNOWN would not change the answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from fraud.common.v1 import decision_pb2 as common
from fraud.ingest.v1 import ingest_service_pb2 as ingest

RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
OK = "OK"
GAVE_UP = "GAVE_UP"


class ScoreStub(Protocol):
    """The one method of IngestServiceStub the client calls (a fake in tests)."""

    def ScoreTransaction(
        self, request: ingest.ScoreTransactionRequest, *, timeout: float
    ) -> Awaitable[ingest.ScoreTransactionResponse]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """When to send a request again, and when to stop.

    Attributes:
        give_up_s: Seconds after the request was due when no further attempt starts.
        attempt_timeout_s: gRPC deadline of one attempt (never past the give-up time).
        first_backoff_s: Wait after the first failed attempt; doubles per failure.
        max_backoff_s: Cap of the wait: it bounds how late a recovery is noticed.
    """

    give_up_s: float = 30.0
    attempt_timeout_s: float = 2.0
    first_backoff_s: float = 0.05
    max_backoff_s: float = 1.0

    def retryable(self, code: grpc.StatusCode) -> bool:
        return code in RETRYABLE

    def backoff(self, failures: int, jitter: float) -> float:
        """Wait after the ``failures``-th failed attempt; ``jitter`` in [0, 1) spreads it over half to all of it."""
        ceiling = min(self.max_backoff_s, self.first_backoff_s * 2 ** (failures - 1))
        return ceiling * (0.5 + jitter / 2)

    def attempt_timeout(self, elapsed: float) -> float | None:
        """Deadline for an attempt starting ``elapsed`` s after the request was due; None when it is too late."""
        left = self.give_up_s - elapsed
        return min(self.attempt_timeout_s, left) if left > 0 else None


@dataclass
class Outcome:
    """One request's story on the harness's clock (seconds, `time.perf_counter`).

    Attributes:
        transaction_id: The request's id (the same on every attempt).
        scheduled: When the open loop was due to send it; latency counts from here.
        final: ``OK``, ``GAVE_UP`` (retryable errors until the give-up time) or a non-retryable status name.
        answered: When the OK answer arrived.
        failures: ``(time the attempt ended, status name)`` of every failed attempt.
        decision: APPROVE / REVIEW / DECLINE of the answer.
        scoring_path: TRITON / LOCAL_ONNX / SAFE_MODE_RULES of the answer.
        degraded: The answer's degraded flag.
        replayed: The answer was the recorded decision of an earlier attempt.
    """

    transaction_id: str
    scheduled: float
    final: str = ""
    answered: float | None = None
    failures: list[tuple[float, str]] = field(default_factory=list)
    decision: str = ""
    scoring_path: str = ""
    degraded: bool = False
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.final == OK

    @property
    def latency_ms(self) -> float | None:
        return (self.answered - self.scheduled) * 1000 if self.answered is not None else None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


async def score_with_retry(
    stub: ScoreStub,
    request: ingest.ScoreTransactionRequest,
    scheduled: float,
    policy: RetryPolicy,
    *,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> Outcome:
    """Sends ``request`` until it is answered, fails for good, or the give-up time has passed.

    Args:
        stub: The ingest stub (or a fake).
        request: The request; every attempt sends it unchanged.
        scheduled: When it was due (``clock`` time).
        policy: The retry policy.
        clock: The clock all times are read from.
        sleep: How to wait between attempts.
        jitter: Source of the backoff's jitter, in [0, 1).

    Returns:
        What happened to it.
    """
    outcome = Outcome(request.transaction_id, scheduled)
    while (timeout := policy.attempt_timeout(clock() - scheduled)) is not None:
        try:
            response = await stub.ScoreTransaction(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            outcome.failures.append((clock(), exc.code().name))
            if not policy.retryable(exc.code()):
                outcome.final = exc.code().name
                return outcome
            wait = policy.backoff(len(outcome.failures), jitter())
            if policy.attempt_timeout(clock() + wait - scheduled) is None:
                break
            await sleep(wait)
            continue
        outcome.answered = clock()
        outcome.final = OK
        outcome.decision = common.Decision.Name(response.decision).removeprefix("DECISION_")
        outcome.scoring_path = common.ScoringPath.Name(response.scoring_path).removeprefix("SCORING_PATH_")
        outcome.degraded, outcome.replayed = response.degraded, response.replayed
        return outcome
    outcome.final = GAVE_UP
    return outcome
