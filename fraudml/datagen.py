"""Seeded synthetic card transactions, after the simulator of the Fraud Detection Handbook (Le Borgne et al.).

Customers and terminals sit on a 100x100 grid; a customer pays at terminals within `radius` of home, with
a personal mean amount (std = mean / 2) and a Poisson number of transactions per day. Three fraud scenarios:
(1) any amount above 220 is fraud; (2) each day 2 random terminals are compromised and their next 28 days of
transactions are fraud; (3) each day 3 random customers are compromised and, over their next 14 days, a third
of their transactions have their amount multiplied by 5 and are fraud. Later scenarios override earlier labels.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

GRID = 100.0
SECONDS_PER_DAY = 86_400
BIN = "400000"  # a test-range Visa-like issuer prefix: these PANs are synthetic, never real cards


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
    lists = []
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


def generate(
    n_customers: int = 2_000,
    n_terminals: int = 10_000,
    n_days: int = 60,
    start_date: date | str = "2026-01-01",
    seed: int = 0,
    radius: float = 5.0,
) -> pd.DataFrame:
    """Generate a labelled transaction table, sorted by time, identical for identical arguments.

    Returns:
        Columns tx_id (str), tx_time (datetime64 UTC), card_pan (str, synthetic), customer_id (int),
        terminal_id (str), amount_minor (int, cents), currency ("EUR"), is_fraud (0/1), fraud_scenario (0-3).
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(start_date).normalize()
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")

    customers_xy = rng.uniform(0, GRID, size=(n_customers, 2))
    mean_amount = rng.uniform(5, 100, size=n_customers)
    std_amount = mean_amount / 2
    tx_per_day = rng.uniform(0, 4, size=n_customers)
    terminals_xy = rng.uniform(0, GRID, size=(n_terminals, 2))
    offsets, flat = _available_terminals(customers_xy, terminals_xy, radius)
    n_available = np.diff(offsets)

    counts = rng.poisson(tx_per_day[:, None], size=(n_customers, n_days))
    counts[n_available == 0] = 0  # nobody to pay
    customer = np.repeat(np.repeat(np.arange(n_customers), n_days), counts.ravel())
    day = np.repeat(np.tile(np.arange(n_days), n_customers), counts.ravel())
    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(customer))
    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY)  # as the handbook does: drop times outside the day
    customer, day, seconds = customer[keep], day[keep], seconds[keep].astype(np.int64)

    amount = rng.normal(mean_amount[customer], std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean_amount[customer[negative]])
    amount_minor = np.round(amount * 100).astype(np.int64)
    pick = np.floor(rng.uniform(size=len(customer)) * n_available[customer]).astype(np.int64)
    terminal = flat[offsets[customer] + pick]

    scenario = np.zeros(len(customer), dtype=np.int64)
    scenario[amount_minor > 22_000] = 1
    scenario[_compromised(rng, n_terminals, n_days, 2, 28)[terminal, day]] = 2
    victim_tx = _compromised(rng, n_customers, n_days, 3, 14)[customer, day] & (rng.uniform(size=len(customer)) < 1 / 3)
    amount_minor[victim_tx] *= 5
    scenario[victim_tx] = 3

    order = np.lexsort((customer, seconds, day))
    customer, day, seconds = customer[order], day[order], seconds[order]
    terminal, amount_minor, scenario = terminal[order], amount_minor[order], scenario[order]
    pans = np.array([synthetic_pan(c) for c in range(n_customers)], dtype=object)
    tag = f"sim{seed}-{start:%Y%m%d}"
    return pd.DataFrame(
        {
            "tx_id": [f"{tag}-{i:08d}" for i in range(len(customer))],
            "tx_time": start + pd.to_timedelta(day * SECONDS_PER_DAY + seconds, unit="s"),
            "card_pan": pans[customer],
            "customer_id": customer,
            "terminal_id": [f"term-{t:05d}" for t in terminal],
            "amount_minor": amount_minor,
            "currency": "EUR",
            "is_fraud": (scenario > 0).astype(np.int64),
            "fraud_scenario": scenario,
        }
    )
