"""The feature function over card and terminal state, online (one event at a time) and in batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraudshared.features.definition import (
    CARD_WINDOWS_DAYS,
    FEATURE_SET_VERSION,
    LABEL_DELAY_DAYS,
    MICRODEGREES,
    MINOR_PER_MAJOR,
    N_FEATURES,
    RISK_WINDOWS_DAYS,
    TERMINAL_WINDOWS_DAYS,
    UNKNOWN_DISTANCE,
    US_PER_DAY,
    US_PER_SECOND,
    Label,
    Transaction,
    calendar_flags,
    distance_km,
    to_microdegrees,
)
from fraudshared.features.state import CardState, TerminalState

_NO_CARD = (0, 0, 0, 0, 0)


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
        mean, located, lat, lon = 0.0, 0, 0, 0
        for days in CARD_WINDOWS_DAYS:
            count, total, located, lat, lon = card.sums(t, days) if card is not None else _NO_CARD
            mean = total / count / MINOR_PER_MAJOR if count else 0.0
            values += [float(count), mean]
        values.append(amount / mean if mean > 0 else 1.0)  # vs the 30-day mean; cold start (or zero history): 1.0
        terminal = self.terminals.get(tx.terminal_id)
        for days in TERMINAL_WINDOWS_DAYS:
            values.append(float(terminal.count(t, days)) if terminal is not None else 0.0)
        delayed = t - LABEL_DELAY_DAYS * US_PER_DAY
        for days in RISK_WINDOWS_DAYS:
            n = terminal.count(delayed, days) if terminal is not None else 0
            frauds = terminal.known_frauds(delayed, days, t) if terminal is not None and n else 0
            values += [float(n), frauds / n if n else 0.0]
        if tx.location is None or not located:  # the last window's sums are the 30-day ones
            values.append(UNKNOWN_DISTANCE)
        else:
            here = (tx.location[0] / MICRODEGREES, tx.location[1] / MICRODEGREES)
            values.append(distance_km(here, (lat / located / MICRODEGREES, lon / located / MICRODEGREES)))
        values.append(float(card.known_frauds(t, max(CARD_WINDOWS_DAYS), t)) if card is not None else 0.0)
        return values

    def vector_for(self, tx: Transaction) -> np.ndarray:
        """The float32 feature vector of `tx`, from state strictly before it."""
        return np.asarray(self.values_for(tx), dtype=np.float32)

    def apply(self, tx: Transaction) -> None:
        """Update card and terminal state with `tx` (after its vector was computed)."""
        card = self.cards.get(tx.card_token)
        if card is None:
            card = self.cards[tx.card_token] = CardState()
        lat, lon = tx.location if tx.location is not None else (0, 0)
        card.add(tx.event_time_us, tx.amount_minor, int(tx.location is not None), lat, lon)
        terminal = self.terminals.get(tx.terminal_id)
        if terminal is None:
            terminal = self.terminals[tx.terminal_id] = TerminalState()
        terminal.add(tx.event_time_us, tx.amount_minor)

    def apply_label(self, label: Label) -> None:
        """Fold a delayed label into its terminal's and its card's state (created when not seen yet)."""
        terminal = self.terminals.get(label.terminal_id)
        if terminal is None:
            terminal = self.terminals[label.terminal_id] = TerminalState()
        terminal.label(label)
        if label.card_token:
            card = self.cards.get(label.card_token)
            if card is None:
                card = self.cards[label.card_token] = CardState()
            card.label(label)

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


def _epoch_us(times: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(times):
        if getattr(times.dt, "tz", None) is None:
            raise ValueError("times must be timezone-aware (UTC)")
        return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)
    return np.round(times.to_numpy(np.float64) * US_PER_SECOND).astype(np.int64)


def known_labels(df: pd.DataFrame, delay_days: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
    """The fraud labels of a labelled frame, each reported `delay_days` after its transaction.

    This is the Handbook's assumption (every fraud is known once the delay has passed). A frame with its own
    `label_time` column (when each label became known) uses that instead.
    """
    frauds = df[df["is_fraud"].astype(bool)]
    reported = frauds["label_time"] if "label_time" in frauds else frauds["tx_time"] + pd.Timedelta(days=delay_days)
    return pd.DataFrame(
        {
            "tx_id": frauds["tx_id"].astype(str),
            "card_token": frauds["card_token"].astype(str),
            "terminal_id": frauds["terminal_id"].astype(str),
            "tx_time": frauds["tx_time"],
            "reported_at": reported,
            "is_fraud": True,
        }
    )


def _locations(df: pd.DataFrame) -> list[tuple[int, int] | None]:
    if "terminal_lat" not in df or "terminal_lon" not in df:
        return [None] * len(df)
    lat, lon = df["terminal_lat"].to_numpy(np.float64), df["terminal_lon"].to_numpy(np.float64)
    return [
        None if np.isnan(a) or np.isnan(b) else (to_microdegrees(a), to_microdegrees(b))
        for a, b in zip(lat, lon, strict=True)
    ]


def batch_features(
    df: pd.DataFrame, engine: FeatureEngine | None = None, labels: pd.DataFrame | None = None
) -> np.ndarray:
    """Feature matrix for a frame of transactions, computed by the same engine the features service runs.

    Args:
        df: Columns tx_time (tz-aware datetime64 or epoch seconds), card_token, terminal_id, amount_minor,
            optionally tx_id and terminal_lat / terminal_lon (degrees; NaN when unknown).
        engine: State to start from (e.g. a snapshot); a fresh engine when None. It is updated in place.
        labels: Delayed labels (see `known_labels`): tx_id, card_token, terminal_id, tx_time, reported_at,
            is_fraud. Each
            is folded just before the first transaction whose event time is at or after its report time,
            which is where a live stream would deliver it at the earliest.

    Returns:
        float32 matrix [len(df), N_FEATURES] in the ROW ORDER OF `df`; rows are processed in event-time
        order, equal times in the frame's order (a stable sort), i.e. as the stream would deliver them.
    """
    engine = engine if engine is not None else FeatureEngine()
    times_us = _epoch_us(df["tx_time"])
    order = np.argsort(times_us, kind="stable")
    cards = df["card_token"].astype(str).to_numpy()
    terminals = df["terminal_id"].astype(str).to_numpy()
    amounts = df["amount_minor"].to_numpy(np.int64)
    ids = df["tx_id"].astype(str).to_numpy() if "tx_id" in df else np.arange(len(df)).astype(str)
    locations = _locations(df)
    pending = _label_queue(labels)
    next_label = 0
    out = np.empty((len(df), N_FEATURES), dtype=np.float32)
    for i in order:
        t = int(times_us[i])
        while next_label < len(pending) and pending[next_label].reported_us <= t:
            engine.apply_label(pending[next_label])
            next_label += 1
        tx = Transaction(ids[i], t, cards[i], terminals[i], int(amounts[i]), locations[i])
        out[i] = engine.values_for(tx)  # the float32 cast of the row is the one vector_for makes
        engine.apply(tx)
    return out


def _label_queue(labels: pd.DataFrame | None) -> list[Label]:
    if labels is None or labels.empty:
        return []
    reported, tx_times = _epoch_us(labels["reported_at"]), _epoch_us(labels["tx_time"])
    queue = [
        Label(str(tx_id), str(terminal), int(t), bool(fraud), int(r), str(card))
        for tx_id, terminal, t, fraud, r, card in zip(
            labels["tx_id"],
            labels["terminal_id"],
            tx_times,
            labels["is_fraud"],
            reported,
            labels["card_token"],
            strict=True,
        )
    ]
    return sorted(queue, key=lambda label: label.reported_us)  # stable: equal report times keep frame order
