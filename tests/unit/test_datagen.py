"""Synthetic history: the Handbook's process, named drift scenarios from day D, and `fraudctl data generate`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fraudctl.cli import app
from fraudml.datagen import generate
from fraudml.scenarios import CARD_TESTING, SCENARIOS, SPENDING_FACTOR

ARGS = {"n_customers": 200, "n_terminals": 2_000, "n_days": 20, "seed": 5}
FROM_DAY = 12


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return generate(**ARGS)


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def drifted(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame]:
    return request.param, generate(**ARGS, scenario=request.param, from_day=FROM_DAY)


def split_at_day(df: pd.DataFrame, day: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=day)
    before = df["tx_time"] < cut
    return df[before].reset_index(drop=True), df[~before].reset_index(drop=True)


def test_history_before_the_scenario_is_the_base_history(base: pd.DataFrame, drifted: tuple[str, pd.DataFrame]) -> None:
    name, df = drifted
    pd.testing.assert_frame_equal(split_at_day(df, FROM_DAY)[0], split_at_day(base, FROM_DAY)[0])
    after = split_at_day(df, FROM_DAY)[1]
    assert after["tx_id"].str.contains(f"-{name}-").all() and df["tx_id"].is_unique
    assert df["tx_time"].is_monotonic_increasing and str(df["tx_time"].dt.tz) == "UTC"
    assert (df["is_fraud"] == (df["fraud_scenario"] > 0)).all()
    pd.testing.assert_frame_equal(df, generate(**ARGS, scenario=name, from_day=FROM_DAY))  # deterministic


def test_new_fraud_pattern_is_card_testing_at_new_terminals(base: pd.DataFrame) -> None:
    df = generate(**ARGS, scenario="new-fraud-pattern", from_day=FROM_DAY)
    testing = df[df["fraud_scenario"] == CARD_TESTING]
    assert len(testing) > 0 and testing["is_fraud"].eq(1).all()
    assert testing["tx_time"].min() >= pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=FROM_DAY)
    assert testing["amount_minor"].between(50, 300).all()  # small amounts
    assert not set(testing["terminal_id"]) & set(base["terminal_id"])  # terminals never seen before
    bursts = testing.groupby([testing["customer_id"], testing["tx_time"].dt.floor("D")]).size()
    assert bursts.between(5, 15).all()


def test_spending_shift_scales_genuine_amounts_and_counts(base: pd.DataFrame) -> None:
    df = generate(**ARGS, scenario="spending-shift", from_day=FROM_DAY)
    before, after = split_at_day(base, FROM_DAY)[1], split_at_day(df, FROM_DAY)[1]
    genuine_before = before.loc[before["is_fraud"] == 0, "amount_minor"].mean()
    genuine_after = after.loc[after["is_fraud"] == 0, "amount_minor"].mean()
    assert genuine_after / genuine_before == pytest.approx(SPENDING_FACTOR, rel=0.1)
    assert len(after) / len(before) == pytest.approx(1.5, rel=0.1)
    assert (after.loc[after["is_fraud"] == 0, "amount_minor"] > 22_000).any()  # large genuine payments now exist


def test_new_region_adds_customers_and_terminals(base: pd.DataFrame) -> None:
    df = generate(**ARGS, scenario="new-region", from_day=FROM_DAY)
    after = split_at_day(df, FROM_DAY)[1]
    new_cards = after.loc[after["customer_id"] >= ARGS["n_customers"], "customer_id"].nunique()
    assert new_cards > 0.15 * ARGS["n_customers"]
    new_terminals = set(after["terminal_id"]) - set(base["terminal_id"])
    assert len(new_terminals) > 0.1 * ARGS["n_terminals"]
    assert after.loc[after["customer_id"] >= ARGS["n_customers"], "is_fraud"].sum() > 0  # fraud there too


def test_bad_scenario_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        generate(**ARGS, scenario="nope")
    with pytest.raises(ValueError, match="from_day"):
        generate(**ARGS, scenario="new-region", from_day=ARGS["n_days"])


def test_cli_generate_writes_parquet_and_sha256(tmp_path: Path) -> None:
    out = tmp_path / "tx.parquet"
    args = ["data", "generate", "--out", str(out), "--customers", "50", "--days", "10", "--seed", "3"]
    result = CliRunner().invoke(app, [*args, "--scenario", "new-fraud-pattern", "--from-day", "5"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    expected = generate(n_customers=50, n_terminals=500, n_days=10, seed=3, scenario="new-fraud-pattern", from_day=5)
    pd.testing.assert_frame_equal(df, expected, check_dtype=False)
    digest, name = (out.parent / "tx.parquet.sha256").read_text().split()
    assert name == "tx.parquet" and digest == hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest in result.output.replace("\n", "").replace(" ", "").replace("│", "")
    assert not np.any([pan in result.output for pan in df["card_pan"].unique()])


def test_cli_generate_rejects_an_unknown_scenario_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "generate", "--out", str(tmp_path / "x.parquet"), "--scenario", "nope"])
    assert result.exit_code == 1
    assert "unknown scenario 'nope'" in result.output and "Traceback" not in result.output
