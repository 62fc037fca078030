"""Per-caller token buckets: admission, refill, isolation between callers, RetryInfo round trip."""

from __future__ import annotations

import pytest

from fraudshared.rate_limit import RateLimit, TokenBuckets, retry_status


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_is_admitted_then_the_next_call_waits_one_token() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=10, burst=3), clock)
    assert [buckets.take("user:a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("user:a") == pytest.approx(0.1)


def test_tokens_refill_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=10, burst=2), clock)
    buckets.take("user:a")
    buckets.take("user:a")
    clock.now += 0.05  # half a token
    assert buckets.take("user:a") == pytest.approx(0.05)
    clock.now += 60  # a long pause refills to the burst, not to 600
    assert [buckets.take("user:a") for _ in range(3)][:2] == [0.0, 0.0]
    assert buckets.take("user:a") > 0


def test_one_caller_over_its_limit_does_not_slow_another() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=1, burst=1), clock)
    assert buckets.take("user:noisy") == 0.0
    assert buckets.take("user:noisy") > 0
    assert buckets.take("user:quiet") == 0.0


def test_idle_callers_are_forgotten() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=1_000_000, burst=10), clock)
    for i in range(100):
        buckets.take(f"user:u{i}")
    clock.now += 10_000
    for _ in range(5000):  # enough admissions to trigger a sweep
        clock.now += 0.001  # one token each time at 1,000,000/s
        assert buckets.take("user:busy") == 0.0
    assert len(buckets) == 1


@pytest.mark.parametrize("rate,burst", [(0, 1), (-1, 1), (float("nan"), 1), (1, 0.5), (1, float("inf"))])
def test_nonsense_limits_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(per_second=rate, burst=burst)


def test_retry_status_carries_the_delay() -> None:
    from google.rpc import error_details_pb2

    status = retry_status("slow down", 0.25)
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() == 250_000_000
