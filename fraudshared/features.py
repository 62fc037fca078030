"""The one card-fraud feature definition, shared by training (batch) and the features service (online).

Point-in-time rule: the vector for a transaction is computed from state built by transactions strictly
before it (by event time; equal event times by arrival order), and only then is the state updated with it.
Windows are measured from the transaction's event time, never the wall clock, and money is summed in
integer minor units, so a replay of the same event stream yields bit-identical float32 vectors.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import numpy as np
import pandas as pd

FEATURE_SET_VERSION = "card-v1"

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR
MINOR_PER_MAJOR = 100  # card-v1 assumes a 2-decimal billing currency (EUR); amounts arrive in minor units.
CARD_WINDOWS_DAYS = (1, 7, 30)
TERMINAL_WINDOWS_DAYS = (1, 7)
CARD_MAX_EVENTS = 10_000  # per-card memory bound; a card with more events in 30 days sees only the newest
TERMINAL_MAX_EVENTS = 200_000  # per-terminal memory bound (a busy merchant), same saturation caveat

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "is_weekend",
    "is_night",
    "card_tx_count_1d",
    "card_mean_amount_1d",
    "card_tx_count_7d",
    "card_mean_amount_7d",
    "card_tx_count_30d",
    "card_mean_amount_30d",
    "amount_to_card_mean_30d",
    "terminal_tx_count_1d",
    "terminal_tx_count_7d",
    # Terminal risk from delayed fraud labels (terminal_risk_7d, ...) arrives with a later feature set
    # ("card-v2"): TerminalState will then also keep (time, is_fraud) labels and the engine a label delay.
)
N_FEATURES = len(FEATURE_NAMES)


def to_epoch_us(event_time: datetime | pd.Timestamp | float | int) -> int:
    """Normalise an event time (epoch seconds or a timezone-aware datetime) to integer epoch microseconds.

    Raises:
        ValueError: For a naive datetime, whose meaning would depend on the machine's time zone.
    """
    if isinstance(event_time, datetime):
        if event_time.tzinfo is None:
            raise ValueError("event time must be timezone-aware (UTC); got a naive datetime")
        return int(pd.Timestamp(event_time).value // 1_000)
    return round(float(event_time) * US_PER_SECOND)


@dataclass(frozen=True, slots=True)
class Transaction:
    """The fields of a card transaction that features depend on (the card is a token, never a PAN)."""

    tx_id: str
    event_time_us: int
    card_token: str
    terminal_id: str
    amount_minor: int

    @classmethod
    def create(
        cls, tx_id: str, event_time: datetime | float | int, card_token: str, terminal_id: str, amount_minor: int
    ) -> Transaction:
        """Build a transaction from an epoch-seconds or datetime event time."""
        return cls(str(tx_id), to_epoch_us(event_time), str(card_token), str(terminal_id), int(amount_minor))


_AFTER = float("inf")  # (t, _AFTER) sorts after every (t, ...) entry: bisect on tuples without a key function


class _History:
    """Time-ordered, bounded history of one card or terminal.

    Entries are (event time us, amount minor, running minor-unit total up to and including the entry); the
    running total turns every window sum into one subtraction, exact because it is an integer.
    """

    horizon_us: int = 0
    max_events: int = 0

    def __init__(self, events: Iterable[tuple[int, int]] = ()) -> None:
        self.events: deque[tuple[int, int, int]] = deque(maxlen=self.max_events)
        for t, amount in sorted(events, key=lambda e: e[0]):
            self.add(t, amount)

    def windows(self, at_us: int, days: Iterable[int]) -> list[tuple[int, int]]:
        """(count, minor-unit sum) of the events in each window (at - d days, at].

        Events after `at` (late arrivals already applied) are not seen.
        """
        events = self.events
        hi = bisect.bisect_right(events, (at_us, _AFTER))
        result = []
        for d in days:
            lo = bisect.bisect_right(events, (at_us - d * US_PER_DAY, _AFTER))
            if lo >= hi:
                result.append((0, 0))
            else:
                first = events[lo]
                result.append((hi - lo, events[hi - 1][2] - first[2] + first[1]))
        return result

    def count(self, at_us: int, days: int) -> int:
        """Number of events in (at - days, at]."""
        hi = bisect.bisect_right(self.events, (at_us, _AFTER))
        return hi - bisect.bisect_right(self.events, (at_us - days * US_PER_DAY, _AFTER))

    def add(self, at_us: int, amount_minor: int) -> None:
        """Record an event, keeping time order (ties stay in arrival order), and drop what left the horizon."""
        events = self.events
        if len(events) == events.maxlen:
            events.popleft()
        if not events or events[-1][0] <= at_us:
            events.append((at_us, amount_minor, (events[-1][2] if events else 0) + amount_minor))
        else:  # a late arrival (rare): insert after every event with the same or an earlier time, re-total after
            i = bisect.bisect_right(events, (at_us, _AFTER))
            running = events[i - 1][2] if i else 0
            events.insert(i, (at_us, amount_minor, 0))
            for j in range(i, len(events)):
                t, amount, _ = events[j]
                running += amount
                events[j] = (t, amount, running)
        # Prune against this event's own time, so a late event never deletes history a later one still needs.
        while events and events[0][0] <= at_us - self.horizon_us:
            events.popleft()

    def to_dict(self) -> dict[str, Any]:
        return {"events": [[t, a] for t, a, _ in self.events]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls((int(t), int(a)) for t, a in data["events"])


class CardState(_History):
    """Per-card history over the longest card window (30 days)."""

    horizon_us = max(CARD_WINDOWS_DAYS) * US_PER_DAY
    max_events = CARD_MAX_EVENTS


class TerminalState(_History):
    """Per-terminal history over the longest terminal window (7 days)."""

    horizon_us = max(TERMINAL_WINDOWS_DAYS) * US_PER_DAY
    max_events = TERMINAL_MAX_EVENTS


def calendar_flags(event_time_us: int) -> tuple[float, float]:
    """(is_weekend, is_night) of a UTC event time; night is 00:00 to 06:00 (06:00 excluded)."""
    day, time_of_day = divmod(event_time_us, US_PER_DAY)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return float(weekday >= 5), float(time_of_day < 6 * US_PER_HOUR)


class FeatureEngine:
    """Card and terminal state plus the feature function; one instance per partition owner."""

    def __init__(self) -> None:
        self.cards: dict[str, CardState] = {}
        self.terminals: dict[str, TerminalState] = {}

    def values_for(self, tx: Transaction) -> list[float]:
        """Feature values (FEATURE_NAMES order) from state strictly before `tx`; does not change state."""
        t = tx.event_time_us
        amount = tx.amount_minor / MINOR_PER_MAJOR
        is_weekend, is_night = calendar_flags(t)
        values = [amount, is_weekend, is_night]
        card = self.cards.get(tx.card_token)
        stats = card.windows(t, CARD_WINDOWS_DAYS) if card is not None else [(0, 0)] * len(CARD_WINDOWS_DAYS)
        mean_30d = 0.0
        for count, total in stats:
            mean = total / count / MINOR_PER_MAJOR if count else 0.0
            values += [float(count), mean]
            mean_30d = mean
        values.append(amount / mean_30d if mean_30d > 0 else 1.0)  # cold start (or zero-amount history): 1.0
        terminal = self.terminals.get(tx.terminal_id)
        for days in TERMINAL_WINDOWS_DAYS:
            values.append(float(terminal.count(t, days)) if terminal is not None else 0.0)
        return values

    def vector_for(self, tx: Transaction) -> np.ndarray:
        """The float32 feature vector of `tx`, from state strictly before it."""
        return np.asarray(self.values_for(tx), dtype=np.float32)

    def apply(self, tx: Transaction) -> None:
        """Update card and terminal state with `tx` (after its vector was computed)."""
        card = self.cards.get(tx.card_token)
        if card is None:
            card = self.cards[tx.card_token] = CardState()
        card.add(tx.event_time_us, tx.amount_minor)
        terminal = self.terminals.get(tx.terminal_id)
        if terminal is None:
            terminal = self.terminals[tx.terminal_id] = TerminalState()
        terminal.add(tx.event_time_us, tx.amount_minor)

    def score_then_update(self, tx: Transaction) -> np.ndarray:
        """Compute the point-in-time vector of `tx`, then fold `tx` into the state."""
        vector = self.vector_for(tx)
        self.apply(tx)
        return vector

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible snapshot of all state."""
        return {
            "feature_set_version": FEATURE_SET_VERSION,
            "cards": {k: v.to_dict() for k, v in self.cards.items()},
            "terminals": {k: v.to_dict() for k, v in self.terminals.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEngine:
        """Restore a snapshot written by `to_dict` for the same feature-set version.

        Raises:
            ValueError: If the snapshot was written for another feature-set version.
        """
        if data.get("feature_set_version") != FEATURE_SET_VERSION:
            raise ValueError(f"snapshot is for {data.get('feature_set_version')!r}, not {FEATURE_SET_VERSION!r}")
        engine = cls()
        engine.cards = {k: CardState.from_dict(v) for k, v in data["cards"].items()}
        engine.terminals = {k: TerminalState.from_dict(v) for k, v in data["terminals"].items()}
        return engine


def batch_features(df: pd.DataFrame, engine: FeatureEngine | None = None) -> np.ndarray:
    """Feature matrix for a frame of transactions, computed by the same engine the online service runs.

    Args:
        df: Columns tx_time (tz-aware datetime64 or epoch seconds), card_token, terminal_id, amount_minor.
        engine: State to start from (e.g. a snapshot); a fresh engine when None. It is updated in place.

    Returns:
        float32 matrix [len(df), N_FEATURES] in the ROW ORDER OF `df`; rows are processed in event-time
        order, equal times in the frame's order (a stable sort), i.e. as the stream would deliver them.
    """
    engine = engine if engine is not None else FeatureEngine()
    times = df["tx_time"]
    if pd.api.types.is_datetime64_any_dtype(times):
        if getattr(times.dt, "tz", None) is None:
            raise ValueError("tx_time must be timezone-aware (UTC)")
        times_us = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)
    else:
        times_us = np.round(times.to_numpy(np.float64) * US_PER_SECOND).astype(np.int64)
    order = np.argsort(times_us, kind="stable")
    cards = df["card_token"].astype(str).to_numpy()
    terminals = df["terminal_id"].astype(str).to_numpy()
    amounts = df["amount_minor"].to_numpy(np.int64)
    ids = df["tx_id"].astype(str).to_numpy() if "tx_id" in df else np.arange(len(df)).astype(str)
    out = np.empty((len(df), N_FEATURES), dtype=np.float32)
    for i in order:
        tx = Transaction(ids[i], int(times_us[i]), cards[i], terminals[i], int(amounts[i]))
        out[i] = engine.values_for(tx)  # the float32 cast of the row is the one vector_for makes
        engine.apply(tx)
    return out
