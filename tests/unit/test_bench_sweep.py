"""bench's closed-loop sweep: the max is the best step that answered everything; a shedding step ends it."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from bench.__main__ import _concurrencies, max_throughput
from bench.stats import RunStats


def _run(concurrency: int, throughput: float, errors: int = 0, degraded: int = 0) -> RunStats:
    ok = int(throughput)
    decisions = Counter({"APPROVE": ok, **({"degraded": degraded} if degraded else {})})
    failures = Counter({"RESOURCE_EXHAUSTED": errors} if errors else {})
    return RunStats.build(f"c={concurrency}", [1.0] * ok, 1.0, failures, decisions)


def _sweep(throughputs: dict[int, RunStats]) -> tuple[RunStats, list[RunStats], list[int]]:
    asked: list[int] = []

    def step(concurrency: int) -> RunStats:
        asked.append(concurrency)
        return throughputs[concurrency]

    best, runs = max_throughput(step, sorted(throughputs))
    return best, runs, asked


def test_the_best_step_is_the_max_even_when_a_later_step_is_slower() -> None:
    best, runs, asked = _sweep({16: _run(16, 800), 32: _run(32, 1100), 64: _run(64, 1050)})
    assert best.name == "c=32" and best.throughput == 1100
    assert asked == [16, 32, 64] and len(runs) == 3


def test_a_step_that_sheds_or_degrades_ends_the_sweep_and_is_not_the_max() -> None:
    best, runs, asked = _sweep({16: _run(16, 800), 32: _run(32, 1500, errors=3), 64: _run(64, 2000)})
    assert best.name == "c=16"
    assert asked == [16, 32] and [run.name for run in runs] == ["c=16", "c=32"]
    best, _, asked = _sweep({16: _run(16, 800), 32: _run(32, 900, degraded=5), 64: _run(64, 2000)})
    assert best.name == "c=16" and asked == [16, 32]


def test_when_even_the_first_step_fails_it_is_reported() -> None:
    best, runs, asked = _sweep({16: _run(16, 300, errors=10), 32: _run(32, 2000)})
    assert best.name == "c=16" and best.errors == {"RESOURCE_EXHAUSTED": 10}
    assert asked == [16] and len(runs) == 1


@pytest.mark.parametrize("text", ["", "16,x", "0,16", "-4"])
def test_bad_concurrency_lists_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _concurrencies(text)


def test_a_concurrency_list_is_parsed_in_order() -> None:
    assert _concurrencies("64,16,32") == [64, 16, 32]
