"""Feature set card-v2: names, windows and the value types the engine folds.

Point-in-time rule: the vector for a transaction is computed from state built by events strictly before it
(transactions by event time, equal times by arrival order; labels by the order they were folded), and only
then is the state updated with it. Windows are measured from the transaction's event time, never the wall
clock; money is summed in integer minor units and positions in integer microdegrees, so a replay of the same
event stream yields bit-identical float32 vectors.

Terminal risk follows the Fraud Detection Handbook (ch. 3.4): the share of a terminal's transactions in a
window that ended `LABEL_DELAY_DAYS` ago which are known to be fraudulent. A fraud label counts only once it
was folded into the state and its report time is not after the transaction being scored: labels arrive late
(chargebacks, investigations), and the delay keeps the ratio's denominator to transactions whose labels are
mostly known. The card's own known frauds need no such delay: a count has no denominator to keep complete,
so every fraud label reported by the time of the transaction counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

FEATURE_SET_VERSION = "card-v2"

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR
MINOR_PER_MAJOR = 100  # card-v2 assumes a 2-decimal billing currency (EUR); amounts arrive in minor units.
MICRODEGREES = 1_000_000
CARD_WINDOWS_DAYS = (1, 7, 30)
TERMINAL_WINDOWS_DAYS = (1, 7)  # recent activity (no labels needed)
RISK_WINDOWS_DAYS = (1, 7, 30)  # delayed windows of terminal risk
LABEL_DELAY_DAYS = 7  # the Handbook's delay period: labels of newer transactions are mostly not known yet
CARD_MAX_EVENTS = 10_000  # per-card memory bound; a card with more events in 30 days sees only the newest
TERMINAL_MAX_EVENTS = 200_000  # per-terminal memory bound (a busy merchant), same saturation caveat
UNKNOWN_DISTANCE = -1.0  # no location on the transaction, or none in the card's 30-day history
EARTH_RADIUS_KM = 6371.0088

CARD_FEATURES: tuple[str, ...] = (
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
)
FEATURE_NAMES: tuple[str, ...] = (
    *CARD_FEATURES,
    "terminal_tx_count_1d",
    "terminal_tx_count_7d",
    "terminal_delayed_tx_count_1d",
    "terminal_risk_1d",
    "terminal_delayed_tx_count_7d",
    "terminal_risk_7d",
    "terminal_delayed_tx_count_30d",
    "terminal_risk_30d",
    "card_terminal_distance_km",
    "card_known_frauds_30d",
)
N_FEATURES = len(FEATURE_NAMES)
# The Handbook's own feature set (ch. 3.4), a subset of ours: what its random-forest baseline is trained on.
HANDBOOK_FEATURES: tuple[str, ...] = (
    *(name for name in CARD_FEATURES if name != "amount_to_card_mean_30d"),
    *(name for name in FEATURE_NAMES if name.startswith(("terminal_delayed", "terminal_risk"))),
)


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


def to_microdegrees(degrees: float) -> int:
    return round(degrees * MICRODEGREES)


@dataclass(frozen=True, slots=True)
class Transaction:
    """The fields of a card transaction that features depend on (the card is a token, never a PAN).

    `location` is the terminal's (latitude, longitude) in integer microdegrees, or None when unknown.
    """

    tx_id: str
    event_time_us: int
    card_token: str
    terminal_id: str
    amount_minor: int
    location: tuple[int, int] | None = None

    @classmethod
    def create(
        cls,
        tx_id: str,
        event_time: datetime | float | int,
        card_token: str,
        terminal_id: str,
        amount_minor: int,
        location: tuple[float, float] | None = None,
    ) -> Transaction:
        """Build a transaction from an epoch-seconds or datetime event time and a location in degrees."""
        where = None if location is None else (to_microdegrees(location[0]), to_microdegrees(location[1]))
        return cls(str(tx_id), to_epoch_us(event_time), str(card_token), str(terminal_id), int(amount_minor), where)


@dataclass(frozen=True, slots=True)
class Label:
    """A delayed label of an earlier transaction, as folded into terminal state."""

    tx_id: str
    terminal_id: str
    tx_time_us: int
    is_fraud: bool
    reported_us: int
    card_token: str = ""


def calendar_flags(event_time_us: int) -> tuple[float, float]:
    """(is_weekend, is_night) of a UTC event time; night is 00:00 to 06:00 (06:00 excluded)."""
    day, time_of_day = divmod(event_time_us, US_PER_DAY)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return float(weekday >= 5), float(time_of_day < 6 * US_PER_HOUR)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (latitude, longitude) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
