"""The retrying client's policy, against a fake ingest stub and a fake clock."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from fraud.common.v1 import decision_pb2 as common
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from resilience.client import GAVE_UP, OK, RetryPolicy, score_with_retry


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeIngest:
    """Answers from a script: a StatusCode fails the attempt, a response answers it; each attempt costs `took` s."""

    def __init__(self, clock: FakeClock, script: list[object], took: float = 0.01) -> None:
        self.clock, self.script, self.took = clock, list(script), took
        self.calls: list[tuple[str, float]] = []

    async def ScoreTransaction(self, request: ingest.ScoreTransactionRequest, *, timeout: float):
        self.calls.append((request.transaction_id, timeout))
        self.clock.now += self.took
        step = self.script.pop(0) if self.script else grpc.StatusCode.UNAVAILABLE
        if isinstance(step, grpc.StatusCode):
            raise AioRpcError(step, Metadata(), Metadata(), details="scripted")
        return step


REQUEST = ingest.ScoreTransactionRequest(transaction_id="tx-1")
ANSWER = ingest.ScoreTransactionResponse(
    transaction_id="tx-1",
    decision=common.DECISION_REVIEW,
    scoring_path=common.SCORING_PATH_LOCAL_ONNX,
    degraded=True,
    replayed=True,
)


async def run(stub: FakeIngest, clock: FakeClock, policy: RetryPolicy | None = None):
    return await score_with_retry(
        stub, REQUEST, clock(), policy or RetryPolicy(), clock=clock, sleep=clock.sleep, jitter=lambda: 0.5
    )


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED]
)
async def test_retries_the_same_request_on_a_transient_status_until_answered(code: grpc.StatusCode) -> None:
    clock = FakeClock()
    stub = FakeIngest(clock, [code, code, ANSWER])
    outcome = await run(stub, clock)
    assert outcome.final == OK and outcome.ok
    assert [tx for tx, _ in stub.calls] == ["tx-1"] * 3
    assert [c for _, c in outcome.failures] == [code.name] * 2
    assert (outcome.decision, outcome.scoring_path, outcome.degraded, outcome.replayed) == (
        "REVIEW",
        "LOCAL_ONNX",
        True,
        True,
    )
    # 3 attempts of 0.01 s plus two backoffs: 0.05 * 0.75 and 0.1 * 0.75 (jitter 0.5).
    assert outcome.latency_ms == pytest.approx((0.03 + 0.0375 + 0.075) * 1000)


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL])
async def test_other_statuses_are_final(code: grpc.StatusCode) -> None:
    clock = FakeClock()
    stub = FakeIngest(clock, [code, ANSWER])
    outcome = await run(stub, clock)
    assert outcome.final == code.name and not outcome.ok
    assert len(stub.calls) == 1 and outcome.answered is None and outcome.latency_ms is None


async def test_gives_up_once_the_give_up_time_has_passed_and_no_attempt_outlives_it() -> None:
    clock = FakeClock()
    stub = FakeIngest(clock, [], took=0.5)  # always UNAVAILABLE
    policy = RetryPolicy(give_up_s=10.0, attempt_timeout_s=2.0)
    started = clock()
    outcome = await run(stub, clock, policy)
    assert outcome.final == GAVE_UP
    assert clock() - started <= 10.0 + 0.5
    assert all(timeout <= 2.0 for _, timeout in stub.calls)
    assert len(outcome.failures) == len(stub.calls) > 5


def test_backoff_doubles_from_the_first_wait_up_to_the_cap_and_jitter_spreads_half_to_all() -> None:
    policy = RetryPolicy(first_backoff_s=0.05, max_backoff_s=1.0)
    assert [policy.backoff(n, 0.999999) for n in (1, 2, 3)] == pytest.approx([0.05, 0.1, 0.2], rel=1e-5)
    assert policy.backoff(20, 0.0) == pytest.approx(0.5)
    assert policy.backoff(20, 0.999999) == pytest.approx(1.0, rel=1e-5)


def test_attempt_timeout_never_reaches_past_the_give_up_time() -> None:
    policy = RetryPolicy(give_up_s=30.0, attempt_timeout_s=2.0)
    assert policy.attempt_timeout(0.0) == 2.0
    assert policy.attempt_timeout(29.5) == pytest.approx(0.5)
    assert policy.attempt_timeout(30.0) is None
