"""bench's capacity at SLO: the highest open-loop rate with p99 under the target and nothing failed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from bench.capacity import capacity_at_slo, meets_slo
from bench.stats import RunStats


def _system(capacity: float, degraded_from: float | None = None) -> tuple[list[float], Callable[[float], RunStats]]:
    """A system whose p99 is 5 ms below `capacity` tx/s and 80 ms above it; the rates it was asked."""
    asked: list[float] = []

    def step(rate: float) -> RunStats:
        asked.append(rate)
        p99 = 5.0 if rate <= capacity else 80.0
        decisions = Counter({"APPROVE": 100})
        if degraded_from is not None and rate >= degraded_from:
            decisions["degraded"] = 1
        return RunStats.build(f"{rate:.0f}", [1.0] * 98 + [p99] * 2, 1.0, Counter(), decisions, rate)

    return asked, step


def test_it_climbs_then_bisects_to_within_the_tolerance() -> None:
    asked, step = _system(capacity=430)
    found = capacity_at_slo(step, start=100, growth=1.5, tolerance=0.05)
    assert found.bounded and found.rate <= 430 < found.missed  # type: ignore[operator]
    assert found.missed <= found.rate * 1.05  # type: ignore[operator]
    assert asked[:4] == [100, 150, 225, 337.5] and len(found.steps) == len(asked)


def test_when_the_start_misses_it_comes_down_until_a_rate_meets_it() -> None:
    asked, step = _system(capacity=60)
    found = capacity_at_slo(step, start=200, growth=2.0, tolerance=0.1)
    assert asked[:3] == [200, 100, 50] and 50 <= found.rate <= 60 < found.missed  # type: ignore[operator]


def test_an_error_or_a_degraded_answer_misses_the_slo_whatever_the_latency() -> None:
    fast = RunStats.build("r", [1.0] * 100, 1.0, Counter(), Counter({"APPROVE": 100}), 100.0)
    assert meets_slo(fast)
    assert not meets_slo(RunStats.build("r", [1.0] * 100, 1.0, Counter({"UNAVAILABLE": 1}), Counter(), 100.0))
    assert not meets_slo(RunStats.build("r", [1.0] * 100, 1.0, Counter(), Counter({"degraded": 1}), 100.0))
    assert not meets_slo(RunStats.build("r", [], 1.0, Counter(), Counter(), 100.0))  # nothing answered
    _, step = _system(capacity=1000, degraded_from=300)
    assert capacity_at_slo(step, start=100, growth=2.0).rate < 300


def test_out_of_steps_it_reports_a_lower_bound() -> None:
    _, step = _system(capacity=10_000)
    found = capacity_at_slo(step, start=100, growth=2.0, max_steps=3)
    assert found.rate == 400 and not found.bounded and found.to_dict()["missed"] is None
