"""Per-card and per-terminal state: bounded, time-ordered histories with exact running totals."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Self

from fraudshared.features.definition import (
    CARD_MAX_EVENTS,
    CARD_WINDOWS_DAYS,
    LABEL_DELAY_DAYS,
    RISK_WINDOWS_DAYS,
    TERMINAL_MAX_EVENTS,
    TERMINAL_WINDOWS_DAYS,
    US_PER_DAY,
    Label,
)

_AFTER = float("inf")  # (t, _AFTER) sorts after every (t, ...) entry: bisect on tuples without a key function


class _History:
    """Time-ordered, bounded history of one card or terminal.

    An entry is (event time us, q_1..q_n, running q_1..q_n): `n` integer quantities per event and their
    running totals up to and including the entry. A window sum is then one subtraction, exact because every
    quantity is an integer.
    """

    horizon_us: int = 0
    max_events: int = 0
    quantities: int = 1

    def __init__(self, events: Iterable[Sequence[int]] = ()) -> None:
        self.events: deque[tuple[int, ...]] = deque(maxlen=self.max_events)
        for event in sorted(events, key=lambda e: e[0]):
            self.add(event[0], *event[1:])

    def _bounds(self, at_us: int, days: int) -> tuple[int, int]:
        """Index range [lo, hi) of the events in (at - days, at]."""
        events = self.events
        hi = bisect.bisect_right(events, (at_us, _AFTER))
        return bisect.bisect_right(events, (at_us - days * US_PER_DAY, _AFTER)), hi

    def sums(self, at_us: int, days: int) -> tuple[int, ...]:
        """(count, sum of q_1, ..., sum of q_n) over the window (at - days, at].

        Events after `at` (late arrivals already applied) are not seen.
        """
        lo, hi = self._bounds(at_us, days)
        n = self.quantities
        if lo >= hi:
            return (0,) * (n + 1)
        first, last = self.events[lo], self.events[hi - 1]
        return (hi - lo, *(last[1 + n + k] - first[1 + n + k] + first[1 + k] for k in range(n)))

    def count(self, at_us: int, days: int) -> int:
        """Number of events in (at - days, at]."""
        lo, hi = self._bounds(at_us, days)
        return hi - lo

    def add(self, at_us: int, *values: int) -> None:
        """Record an event, keeping time order (ties stay in arrival order), and drop what left the horizon."""
        events, n = self.events, self.quantities
        if len(events) == events.maxlen:
            events.popleft()
        if not events or events[-1][0] <= at_us:
            last = events[-1][1 + n :] if events else (0,) * n
            events.append((at_us, *values, *(r + v for r, v in zip(last, values, strict=True))))
        else:  # a late arrival (rare): insert after every event with the same or an earlier time, re-total after
            i = bisect.bisect_right(events, (at_us, _AFTER))
            events.insert(i, (at_us, *values, *values))
            running = list(events[i - 1][1 + n :]) if i else [0] * n
            for j in range(i, len(events)):
                own = events[j][1 : 1 + n]
                running = [r + v for r, v in zip(running, own, strict=True)]
                events[j] = (events[j][0], *own, *running)
        self.prune(at_us)

    def prune(self, at_us: int) -> None:
        # Against this event's own time, so a late event never deletes history a later one still needs.
        events = self.events
        while events and events[0][0] <= at_us - self.horizon_us:
            events.popleft()

    def to_dict(self) -> dict[str, Any]:
        """The entries as they are, running totals included: a copy of references (cheap under a lock)."""
        return {"events": tuple(self.events)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        state = cls()
        state._restore(data["events"])
        return state

    def _restore(self, entries: Iterable[Sequence[int]]) -> None:
        """Entries with their running totals are taken as they are; (time, quantities) ones are re-added."""
        full = 1 + 2 * self.quantities
        rows = [tuple(int(v) for v in entry) for entry in entries]
        if all(len(row) == full for row in rows):
            self.events = deque(rows, maxlen=self.max_events)
        else:
            for row in sorted(rows, key=lambda r: r[0]):
                self.add(row[0], *row[1 : 1 + self.quantities])


class _Labelled(_History):
    """A history plus the fraud labels of its transactions.

    `frauds` maps a labelled transaction to (its event time, when its label was reported); a later genuine
    label for the same transaction (a correction) removes it, and a later fraud label (a confirmation) keeps
    the earlier of the two report times: the fraud was known since then.
    """

    def __init__(self, events: Iterable[Sequence[int]] = (), frauds: dict[str, tuple[int, int]] | None = None) -> None:
        self.frauds: dict[str, tuple[int, int]] = dict(frauds or {})  # before add() runs prune()
        super().__init__(events)

    def label(self, label: Label) -> None:
        if label.is_fraud:
            known = self.frauds.get(label.tx_id)
            reported = label.reported_us if known is None else min(known[1], label.reported_us)
            self.frauds[label.tx_id] = (label.tx_time_us, reported)
        else:
            self.frauds.pop(label.tx_id, None)

    def known_frauds(self, at_us: int, days: int, known_by_us: int) -> int:
        """Fraud labels of transactions in (at - days, at] that were reported by `known_by_us`."""
        start = at_us - days * US_PER_DAY
        return sum(1 for t, reported in self.frauds.values() if start < t <= at_us and reported <= known_by_us)

    def prune(self, at_us: int) -> None:
        super().prune(at_us)
        oldest = at_us - self.horizon_us
        if self.frauds and len(self.frauds) % 64 == 0:  # amortised: stale labels only cost memory meanwhile
            for tx_id in [k for k, (t, _) in self.frauds.items() if t <= oldest]:
                del self.frauds[tx_id]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "frauds": dict(self.frauds)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        state = cls(frauds={k: (int(t), int(r)) for k, (t, r) in data.get("frauds", {}).items()})
        state._restore(data["events"])
        return state


class CardState(_Labelled):
    """Per-card history over the longest card window (30 days).

    Quantities: amount (minor units), located (1 when the terminal's position was known), latitude and
    longitude (microdegrees, 0 when unknown): enough for window counts, mean amounts and the centroid of the
    card's terminals.
    """

    horizon_us = max(CARD_WINDOWS_DAYS) * US_PER_DAY
    max_events = CARD_MAX_EVENTS
    quantities = 4


class TerminalState(_Labelled):
    """Per-terminal history over the recent windows and the delayed risk windows, plus its fraud labels."""

    horizon_us = max(max(TERMINAL_WINDOWS_DAYS), LABEL_DELAY_DAYS + max(RISK_WINDOWS_DAYS)) * US_PER_DAY
    max_events = TERMINAL_MAX_EVENTS
    quantities = 1
