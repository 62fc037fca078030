"""Seeded synthetic card transactions, after the simulator of the Fraud Detection Handbook (Le Borgne et al.).

Customers and terminals sit on a 100x100 grid; a customer pays at terminals within `radius` of home, with
a personal mean amount (std = mean / 2) and a Poisson number of transactions per day. Three fraud scenarios:
(1) any amount above 220 is fraud; (2) each day 2 random terminals are compromised and their next 28 days of
transactions are fraud; (3) each day 3 random customers are compromised and, over their next 14 days, a third
of their transactions have their amount multiplied by 5 and are fraud. Later scenarios override earlier labels.
Named drift scenarios (`fraudml.scenarios`) change the history from a given day on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

GRID = 100.0
SECONDS_PER_DAY = 86_400
BIN = "400000"  # a test-range Visa-like issuer prefix: these PANs are synthetic, never real cards
LARGE_AMOUNT_MINOR = 22_000  # scenario 1: above 220.00 is fraud
# The grid laid on the map for terminal locations: about 1 km per grid unit, south-west corner at 48.80 N 2.20 E.
ORIGIN_LAT, ORIGIN_LON, DEG_LAT_PER_UNIT, DEG_LON_PER_UNIT = 48.80, 2.20, 0.009, 0.0137


def grid_to_geo(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latitude, longitude) in degrees of grid positions [N, 2]."""
    return ORIGIN_LAT + xy[:, 1] * DEG_LAT_PER_UNIT, ORIGIN_LON + xy[:, 0] * DEG_LON_PER_UNIT


def luhn_check_digit(partial: str) -> str:
    """The Luhn check digit that makes `partial + digit` a valid number."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions, counted from the digit left of the check digit
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def synthetic_pan(customer_id: int) -> str:
    """A deterministic 16-digit Luhn-valid PAN for a customer (an affine bijection hides the id order)."""
    account = (customer_id * 7_919 + 104_729) % 1_000_000_000
    partial = f"{BIN}{account:09d}"
    return partial + luhn_check_digit(partial)


def _available_terminals(
    customers_xy: np.ndarray, terminals_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """CSR-style (offsets, flat terminal ids) of the terminals within `radius` of each customer."""
    lists: list[np.ndarray] = []
    for start in range(0, len(customers_xy), 512):  # chunks bound the distance matrix's memory
        block = customers_xy[start : start + 512]
        d2 = ((block[:, None, :] - terminals_xy[None, :, :]) ** 2).sum(axis=2)
        lists.extend(np.flatnonzero(row) for row in d2 < radius * radius)
    counts = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = np.concatenate(lists) if lists else np.empty(0, dtype=np.int64)
    return offsets, flat


def _compromised(rng: np.random.Generator, n_entities: int, n_days: int, per_day: int, span: int) -> np.ndarray:
    """Boolean [entity, day] matrix: True on the `span` days following each day's random compromise."""
    mask = np.zeros((n_entities, n_days), dtype=bool)
    for day in range(n_days):
        for entity in rng.choice(n_entities, size=min(per_day, n_entities), replace=False):
            mask[entity, day : day + span] = True
    return mask


@dataclass(frozen=True)
class Population:
    """Customer and terminal profiles; terminal ids in `offsets`/`flat` index `terminals_xy`."""

    customers_xy: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    tx_per_day: np.ndarray
    terminals_xy: np.ndarray
    offsets: np.ndarray
    flat: np.ndarray
    radius: float

    @property
    def n_available(self) -> np.ndarray:
        return np.diff(self.offsets)


def population(
    rng: np.random.Generator,
    n_customers: int,
    n_terminals: int,
    radius: float,
    low: tuple[float, float] = (0.0, 0.0),
    high: tuple[float, float] = (GRID, GRID),
) -> Population:
    """Draw customer and terminal profiles uniformly over the area [low, high)."""
    customers_xy = rng.uniform(low, high, size=(n_customers, 2))
    mean_amount = rng.uniform(5, 100, size=n_customers)
    tx_per_day = rng.uniform(0, 4, size=n_customers)
    terminals_xy = rng.uniform(low, high, size=(n_terminals, 2))
    offsets, flat = _available_terminals(customers_xy, terminals_xy, radius)
    return Population(customers_xy, mean_amount, mean_amount / 2, tx_per_day, terminals_xy, offsets, flat, radius)


@dataclass
class Rows:
    """Transactions as parallel arrays (customer and terminal are indices, day counts from the start)."""

    customer: np.ndarray
    day: np.ndarray
    seconds: np.ndarray
    terminal: np.ndarray
    amount_minor: np.ndarray
    scenario: np.ndarray

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def genuine_rows(
    rng: np.random.Generator, pop: Population, counts: np.ndarray, amount_factor: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer, day, seconds, terminal, amount_minor) for `counts[customer, day]` transactions each."""
    n_customers, n_days = counts.shape
    counts = np.where(pop.n_available[:, None] == 0, 0, counts)  # nobody to pay
    customer = np.repeat(np.repeat(np.arange(n_customers), n_days), counts.ravel())
    day = np.repeat(np.tile(np.arange(n_days), n_customers), counts.ravel())
    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(customer))
    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY)  # as the handbook does: drop times outside the day
    customer, day, seconds = customer[keep], day[keep], seconds[keep].astype(np.int64)
    mean = pop.mean_amount[customer] * amount_factor
    amount = rng.normal(mean, pop.std_amount[customer] * amount_factor)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    amount_minor = np.round(amount * 100).astype(np.int64)
    pick = np.floor(rng.uniform(size=len(customer)) * pop.n_available[customer]).astype(np.int64)
    terminal = pop.flat[pop.offsets[customer] + pick]
    return customer, day, seconds, terminal, amount_minor


def history(
    rng: np.random.Generator, pop: Population, n_days: int, terminals_per_day: int = 2, customers_per_day: int = 3
) -> Rows:
    """`n_days` of transactions of `pop` with the Handbook's three fraud scenarios (unsorted)."""
    n_customers, n_terminals = len(pop.customers_xy), len(pop.terminals_xy)
    counts = rng.poisson(pop.tx_per_day[:, None], size=(n_customers, n_days))
    customer, day, seconds, terminal, amount_minor = genuine_rows(rng, pop, counts)
    scenario = np.zeros(len(customer), dtype=np.int64)
    scenario[amount_minor > LARGE_AMOUNT_MINOR] = 1
    scenario[_compromised(rng, n_terminals, n_days, terminals_per_day, 28)[terminal, day]] = 2
    victims = _compromised(rng, n_customers, n_days, customers_per_day, 14)[customer, day]
    victim_tx = victims & (rng.uniform(size=len(customer)) < 1 / 3)
    amount_minor[victim_tx] *= 5
    scenario[victim_tx] = 3
    return Rows(customer, day, seconds, terminal, amount_minor, scenario)


def generate(
    n_customers: int = 2_000,
    n_terminals: int = 10_000,
    n_days: int = 60,
    start_date: date | str = "2026-01-01",
    seed: int = 0,
    radius: float = 5.0,
    scenario: str | None = None,
    from_day: int | None = None,
) -> pd.DataFrame:
    """Generate a labelled transaction table, sorted by time, identical for identical arguments.

    Args:
        n_customers: Customers (one card each).
        n_terminals: Terminals on the grid.
        n_days: Days of history.
        start_date: First day (UTC).
        seed: Seed of every random draw.
        radius: A customer pays at terminals within this distance of home.
        scenario: A drift scenario of `fraudml.scenarios.SCENARIOS`, applied from `from_day`; None for none.
        from_day: First day (0-based) the scenario changes; default n_days // 2. Rows before it are
            identical (tx_id included) to those generated without a scenario.

    Returns:
        Columns tx_id (str), tx_time (datetime64 UTC), card_pan (str, synthetic), customer_id (int),
        terminal_id (str), terminal_lat / terminal_lon (degrees, see `grid_to_geo`; NaN for terminals a drift
        scenario adds, whose location the platform is not told), amount_minor (int, cents), currency ("EUR"),
        is_fraud (0/1), fraud_scenario (0-4).

    Raises:
        ValueError: For an unknown scenario or a `from_day` outside [1, n_days).
    """
    from fraudml.scenarios import apply_scenario  # scenarios builds on this module's helpers

    rng = np.random.default_rng(seed)
    start = pd.Timestamp(start_date).normalize()
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    pop = population(rng, n_customers, n_terminals, radius)
    rows = history(rng, pop, n_days)
    if scenario is not None:
        from_day = n_days // 2 if from_day is None else from_day
        rows = apply_scenario(scenario, rows, pop, n_days=n_days, from_day=from_day, seed=seed)

    order = np.lexsort((rows.customer, rows.seconds, rows.day))
    customer, day, seconds = rows.customer[order], rows.day[order], rows.seconds[order]
    terminal, amount_minor, fraud = rows.terminal[order], rows.amount_minor[order], rows.scenario[order]
    n_cards = max(n_customers, int(customer.max()) + 1 if len(customer) else 0)  # new-region adds customers
    pans = np.array([synthetic_pan(c) for c in range(n_cards)], dtype=object)
    tag = f"sim{seed}-{start:%Y%m%d}"
    ids = [f"{tag}-{i:08d}" for i in range(len(customer))]
    if scenario is not None:  # changed history gets ids of its own, so it never collides with the base data
        ids = [
            f"{tag}-{scenario}-{i:08d}" if d >= from_day else x for i, (x, d) in enumerate(zip(ids, day, strict=True))
        ]
    known = terminal < len(pop.terminals_xy)
    lat, lon = np.full(len(terminal), np.nan), np.full(len(terminal), np.nan)
    lat[known], lon[known] = grid_to_geo(pop.terminals_xy[terminal[known]])
    return pd.DataFrame(
        {
            "tx_id": ids,
            "tx_time": start + pd.to_timedelta(day * SECONDS_PER_DAY + seconds, unit="s"),
            "card_pan": pans[customer],
            "customer_id": customer,
            "terminal_id": [f"term-{t:05d}" for t in terminal],
            "terminal_lat": lat.round(6),
            "terminal_lon": lon.round(6),
            "amount_minor": amount_minor,
            "currency": "EUR",
            "is_fraud": (fraud > 0).astype(np.int64),
            "fraud_scenario": fraud,
        }
    )
