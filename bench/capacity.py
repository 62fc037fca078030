"""Capacity at SLO: the highest open-loop rate at which p99 stays under the target with no error.

Closed-loop max throughput says how much a system can do when callers wait for it; a payment switch does not
wait, so the number that matters is the rate it can be offered while still answering in time. The search
runs open-loop steps: up by `growth` from a start rate until a step misses, then bisects between the best
rate that met the SLO and the lowest that missed until they are within `tolerance` of each other. When even
the start misses, it comes down by `growth` until a step meets it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.stats import RunStats

SLO_P99_MS = 25.0


def meets_slo(run: RunStats, p99_ms: float = SLO_P99_MS) -> bool:
    """Every request answered (no error, none in safe mode), at least one, and p99 under `p99_ms`."""
    return run.ok > 0 and not run.errors and not run.decisions.get("degraded") and run.p99_ms < p99_ms


@dataclass
class Capacity:
    """The search's answer: `rate` met the SLO (0: none did); `missed` is the lowest rate that did not."""

    rate: float
    missed: float | None
    p99_ms: float
    steps: list[RunStats] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        """Whether a missing rate was found (else `rate` is only a lower bound: the search ran out of steps)."""
        return self.missed is not None

    def to_dict(self) -> dict[str, object]:
        return {
            "rate": round(self.rate, 1),
            "missed": None if self.missed is None else round(self.missed, 1),
            "p99_target_ms": self.p99_ms,
            "steps": [step.to_dict() for step in self.steps],
        }


def capacity_at_slo(
    step: Callable[[float], RunStats],
    start: float,
    *,
    p99_ms: float = SLO_P99_MS,
    growth: float = 1.25,
    tolerance: float = 0.1,
    max_steps: int = 10,
    min_rate: float = 1.0,
) -> Capacity:
    """Searches the highest rate `step(rate)` (one open-loop run) meets the SLO at.

    Args:
        step: Runs the system open-loop at a rate (tx/s) and returns its stats.
        start: The first rate to try (e.g. half the closed-loop max throughput).
        p99_ms: The latency target.
        growth: Factor between rates while no bound is known on that side.
        tolerance: Stop when the missing rate is within this fraction above the meeting one.
        max_steps: At most this many runs.
        min_rate: Do not go below this rate when coming down.

    Returns:
        The best rate that met the SLO, the lowest that missed, and every step run.
    """
    met, missed = 0.0, None
    steps: list[RunStats] = []
    rate = start
    while len(steps) < max_steps:
        run = step(rate)
        steps.append(run)
        if meets_slo(run, p99_ms):
            met = rate
        else:
            missed = rate
        if missed is None:
            rate = met * growth
        elif met == 0.0:
            rate = missed / growth
            if rate < min_rate:
                break
        elif missed <= met * (1 + tolerance):
            break
        else:
            rate = (met + missed) / 2
    return Capacity(met, missed, p99_ms, steps)
