"""Named drift scenarios: the synthetic history changes from a given day on (see docs/data.md).

Each scenario draws from its own seeded generator, so the history before `from_day` is exactly the one
generated without it, and the same arguments always give the same data.

- ``new-fraud-pattern``: card testing. From `from_day`, each day about one card in 200 is tested by a
  fraudster: a burst of 5-15 small payments (0.50-3.00 EUR), 10-120 s apart, at one of a few terminals that
  did not exist before. Labelled fraud, `fraud_scenario` 4. Small amounts look harmless to a model that
  learnt "large amount = fraud"; the burst shows only in the card's 1-day count and the new terminal.
- ``spending-shift``: from `from_day`, every customer's genuine amounts are 1.6x larger and they pay 1.5x
  as often. Labels are unchanged: the Handbook's "above 220 EUR is fraud" rule labelled the base history
  only, so larger genuine payments now look like fraud to the old model (covariate shift, false alarms).
- ``new-region``: from `from_day`, a quarter more customers and terminals, at the same density, in a new
  50x50 area east of the grid, transact with the Handbook's fraud scenarios at a proportional rate. Their
  cards and terminals start with no history (cold-start features).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from fraudml.datagen import GRID, SECONDS_PER_DAY, Population, Rows, genuine_rows, history, population

CARD_TESTING = 4  # fraud_scenario code of the new fraud pattern
SPENDING_FACTOR = 1.6
COUNT_FACTOR = 1.5


def _card_testing(rng: np.random.Generator, rows: Rows, pop: Population, n_days: int, from_day: int) -> Rows:
    n_customers, n_terminals = len(pop.customers_xy), len(pop.terminals_xy)
    per_day = max(1, round(n_customers / 200))
    fraud_terminals = n_terminals + np.arange(max(2, n_terminals // 1000))  # ids that never appeared before
    parts = [rows]
    for day in range(from_day, n_days):
        for card in rng.choice(n_customers, size=min(per_day, n_customers), replace=False):
            size = int(rng.integers(5, 16))
            start = int(rng.integers(0, SECONDS_PER_DAY - 3_600))
            seconds = start + np.cumsum(rng.integers(10, 121, size=size))
            parts.append(
                Rows(
                    customer=np.full(size, card, dtype=np.int64),
                    day=np.full(size, day, dtype=np.int64),
                    seconds=seconds.astype(np.int64),
                    terminal=np.full(size, rng.choice(fraud_terminals), dtype=np.int64),
                    amount_minor=rng.integers(50, 301, size=size).astype(np.int64),
                    scenario=np.full(size, CARD_TESTING, dtype=np.int64),
                )
            )
    return Rows.concat(parts)


def _spending_shift(rng: np.random.Generator, rows: Rows, pop: Population, n_days: int, from_day: int) -> Rows:
    scaled = (rows.day >= from_day) & (rows.scenario == 0)
    rows.amount_minor[scaled] = np.round(rows.amount_minor[scaled] * SPENDING_FACTOR).astype(np.int64)
    extra_rate = pop.tx_per_day * (COUNT_FACTOR - 1)
    counts = rng.poisson(extra_rate[:, None], size=(len(extra_rate), n_days - from_day))
    customer, day, seconds, terminal, amount_minor = genuine_rows(rng, pop, counts, amount_factor=SPENDING_FACTOR)
    extra = Rows(customer, day + from_day, seconds, terminal, amount_minor, np.zeros(len(customer), dtype=np.int64))
    return Rows.concat([rows, extra])


def _new_region(rng: np.random.Generator, rows: Rows, pop: Population, n_days: int, from_day: int) -> Rows:
    n_customers, n_terminals = len(pop.customers_xy), len(pop.terminals_xy)
    share = 0.25
    region = population(
        rng,
        max(1, round(n_customers * share)),
        max(1, round(n_terminals * share)),
        pop.radius,
        low=(GRID, 0.0),
        high=(GRID * 1.5, GRID * 0.5),  # a quarter of the grid's area: the same density
    )
    added = history(
        rng,
        region,
        n_days - from_day,
        terminals_per_day=max(1, round(2 * share)),
        customers_per_day=max(1, round(3 * share)),
    )
    added.customer += n_customers
    added.terminal += n_terminals
    added.day += from_day
    return Rows.concat([rows, added])


SCENARIOS: dict[str, Callable[[np.random.Generator, Rows, Population, int, int], Rows]] = {
    "new-fraud-pattern": _card_testing,
    "spending-shift": _spending_shift,
    "new-region": _new_region,
}


def apply_scenario(name: str, rows: Rows, pop: Population, *, n_days: int, from_day: int, seed: int) -> Rows:
    """Apply scenario `name` from `from_day` (customer and terminal ids may grow past the population's).

    Raises:
        ValueError: For an unknown name or a `from_day` outside [1, n_days).
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if not 1 <= from_day < n_days:
        raise ValueError(f"from_day must be in [1, {n_days}) for {n_days} days; got {from_day}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])  # independent of the base history's draws
    return SCENARIOS[name](rng, rows, pop, n_days, from_day)
