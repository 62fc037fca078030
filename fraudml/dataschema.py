"""The schema of a user's transaction file: column checks that name the row and column of each problem.

See docs/data.md. `normalize` turns a raw frame (CSV text or Parquet types) into the platform's columns, or
raises DataLoadError listing the first MAX_PROBLEMS problems in file order. PANs are tokenized here and
never echoed: a problem in card_pan never repeats the value, and digit runs that could be a PAN are
redacted from any other value shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from fraudml.errors import DataLoadError
from fraudshared.pan_token import luhn_valid, tokenize_pan

MAX_PROBLEMS = 20
MAX_AMOUNT_MINOR = 100_000_000_000  # fraud.common.v1.Money's bound
ID_PATTERN = r"[A-Za-z0-9_:-]{1,64}"
ZONED_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$")
# The currencies the platform settles (fraud.common.v1.Money) and their ISO 4217 minor-unit exponents.
CURRENCY_EXPONENT = {
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "CHF": 2,
    "JPY": 0,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "CAD": 2,
    "AUD": 2,
}


def _redacted(value: object) -> str:
    """Digit runs that could be a PAN replaced (a PAN in the wrong column, or a CSV without its header)."""
    return re.sub(r"\d{12,}", "<digits redacted>", str(value))


def _shown(value: object) -> str:
    """A value safe to print: redacted, long values cut, quoted."""
    text = _redacted(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


class _Problems:
    """Collects (row, column) problems; keeps the first MAX_PROBLEMS in file order, counts them all."""

    def __init__(self, columns: list[str], csv: bool) -> None:
        self.order = {name: i for i, name in enumerate(columns)}
        self.csv = csv
        self.found: list[tuple[int, int, str]] = []
        self.total = 0

    def add(self, bad: np.ndarray, column: str, message: Callable[[int], str]) -> None:
        rows = np.flatnonzero(bad)
        self.total += len(rows)
        self.found += [
            (int(r), self.order.get(column, -1), f"column {column}: {message(int(r))}") for r in rows[:MAX_PROBLEMS]
        ]

    def lines(self) -> list[str]:
        first = sorted(self.found)[:MAX_PROBLEMS]
        where = (lambda r: f"row {r + 1} (line {r + 2})") if self.csv else (lambda r: f"row {r + 1}")
        return [f"{where(r)}, {text}" for r, _, text in first]


def _text(column: pd.Series) -> pd.Series:
    """Values as stripped strings ("" for missing), whatever the stored type."""
    return column.astype("string").fillna("").str.strip().astype(object)


def _check_columns(df: pd.DataFrame) -> None:
    missing = [c for c in ("tx_id", "tx_time", "terminal_id", "currency") if c not in df]
    problems = [f"missing required column {c}" for c in missing]
    cards = [c for c in ("card_pan", "card_token") if c in df]
    if len(cards) != 1:
        problems.append(
            "give exactly one of card_pan (tokenized on load) or card_token" + (", not both" if cards else "")
        )
    amounts = [c for c in ("amount_minor", "amount") if c in df]
    if len(amounts) != 1:
        problems.append(
            "give exactly one of amount_minor (integer) or amount (decimal)" + (", not both" if amounts else "")
        )
    if problems:
        raise DataLoadError(
            f"the file does not have the required columns (found: {', '.join(map(_redacted, df.columns)) or 'none'})",
            problems,
        )


def _event_times(column: pd.Series, problems: _Problems) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        if getattr(column.dt, "tz", None) is None:
            problems.add(np.ones(len(column), dtype=bool)[:1], "tx_time", lambda r: "timestamps have no time zone")
            return pd.Series(pd.NaT, index=column.index, dtype="datetime64[us, UTC]")
        times = column.dt.tz_convert("UTC")
        problems.add(times.isna().to_numpy(), "tx_time", lambda r: "missing")
        return times.astype("datetime64[us, UTC]")
    text = _text(column)
    zoned = text.str.match(ZONED_ISO_TIME).to_numpy(dtype=bool)
    times = pd.to_datetime(text.where(zoned, None), utc=True, format="ISO8601", errors="coerce")
    bad = ~zoned | times.isna().to_numpy()
    problems.add(bad, "tx_time", lambda r: f"{_shown(text.iat[r])} is not an ISO 8601 time with a zone (Z or +hh:mm)")
    return times.astype("datetime64[us, UTC]")


def _identifiers(column: pd.Series, name: str, problems: _Problems) -> pd.Series:
    text = _text(column)
    bad = ~text.str.fullmatch(ID_PATTERN).to_numpy(dtype=bool)
    problems.add(bad, name, lambda r: f"{_shown(text.iat[r])} must match {ID_PATTERN}")
    return text


def _card_tokens(
    df: pd.DataFrame, problems: _Problems, pan_key: Callable[[], tuple[bytes, int]]
) -> tuple[pd.Series, int | None]:
    if "card_token" in df:
        tokens = _identifiers(df["card_token"], "card_token", problems)
        looks_like_pan = tokens.map(lambda t: 12 <= len(t) <= 19 and luhn_valid(t)).to_numpy(dtype=bool)
        problems.add(looks_like_pan, "card_token", lambda r: "looks like a PAN; put PANs in card_pan to tokenize them")
        return tokens, None
    pans = _text(df["card_pan"])
    valid = {p: 12 <= len(p) <= 19 and luhn_valid(p) for p in pans.unique()}
    bad = ~pans.map(valid).to_numpy(dtype=bool)
    problems.add(bad, "card_pan", lambda r: "not a PAN (12-19 digits passing the Luhn check)")  # never echo a PAN
    if bad.all():
        return pans.map(lambda _: ""), None
    key, version = pan_key()
    tokens = {p: tokenize_pan(key, p) for p, ok in valid.items() if ok}
    return pans.map(lambda p: tokens.get(p, "")), version


def _amounts(df: pd.DataFrame, currency: pd.Series, problems: _Problems) -> pd.Series:
    if "amount_minor" in df:
        text = _text(df["amount_minor"]).str.replace(r"\.0+$", "", regex=True)  # 12.0 from a float column
        digits = text.str.fullmatch(r"\d{1,12}").to_numpy(dtype=bool)
        values = pd.to_numeric(text.where(digits, "0")).astype(np.int64)
        bad = ~digits | (values > MAX_AMOUNT_MINOR).to_numpy()
        problems.add(
            bad, "amount_minor", lambda r: f"{_shown(text.iat[r])} is not an integer in [0, {MAX_AMOUNT_MINOR}]"
        )
        return values
    text = _text(df["amount"])
    parts = text.str.extract(r"^(\d{1,12})(?:\.(\d{1,9}))?$")
    exponent = currency.map(CURRENCY_EXPONENT)
    decimals = parts[1].fillna("").str.len()
    well_formed = parts[0].notna().to_numpy()
    known = exponent.notna().to_numpy()  # an unknown currency is reported on its own column
    too_precise = well_formed & known & (decimals > exponent.fillna(0)).to_numpy()
    problems.add(~well_formed, "amount", lambda r: f"{_shown(text.iat[r])} is not a decimal amount like 12.34")
    problems.add(
        too_precise,
        "amount",
        lambda r: f"{_shown(text.iat[r])} has more decimals than {currency.iat[r]} allows ({int(exponent.iat[r])})",
    )
    ok = well_formed & known & ~too_precise
    minor = np.zeros(len(text), dtype=np.int64)
    for i in np.flatnonzero(ok):  # exact decimal -> integer arithmetic, no float rounding
        exp = int(exponent.iat[i])
        fraction = parts.iat[i, 1] if isinstance(parts.iat[i, 1], str) else ""
        minor[i] = int(parts.iat[i, 0]) * 10**exp + int((fraction + "0" * exp)[:exp] or 0)
    problems.add(ok & (minor > MAX_AMOUNT_MINOR), "amount", lambda r: f"{_shown(text.iat[r])} is too large")
    return pd.Series(minor, index=text.index)


def _coordinates(df: pd.DataFrame, problems: _Problems) -> dict[str, pd.Series]:
    """terminal_lat / terminal_lon in degrees (optional, together; an empty cell means unknown)."""
    given = [c for c in ("terminal_lat", "terminal_lon") if c in df]
    if not given:
        return {}
    if len(given) == 1:
        other = "terminal_lon" if given[0] == "terminal_lat" else "terminal_lat"
        problems.add(np.ones(min(1, len(df)), dtype=bool), given[0], lambda r: f"needs the {other} column too")
        return {}
    out = {}
    for name, limit in (("terminal_lat", 90.0), ("terminal_lon", 180.0)):
        text = _text(df[name])
        values = pd.to_numeric(text.where(text != "", None), errors="coerce")
        bad = ((text != "") & (values.isna() | (values.abs() > limit))).to_numpy(dtype=bool)
        problems.add(bad, name, lambda r, t=text, m=limit: f"{_shown(t.iat[r])} is not a number in [-{m:g}, {m:g}]")
        out[name] = values.astype(np.float64)
    half = (out["terminal_lat"].isna() != out["terminal_lon"].isna()).to_numpy()
    problems.add(half, "terminal_lat", lambda r: "give both terminal_lat and terminal_lon, or neither")
    return out


def _labels(column: pd.Series, problems: _Problems) -> pd.Series:
    text = _text(column).replace({"True": "1", "False": "0", "true": "1", "false": "0", "1.0": "1", "0.0": "0"})
    bad = ~text.isin(["0", "1"]).to_numpy()
    problems.add(bad, "is_fraud", lambda r: f"{_shown(text.iat[r])} must be 0 or 1")
    return (text == "1").astype(np.int64)


def normalize(
    df: pd.DataFrame, *, csv: bool = False, pan_key: Callable[[], tuple[bytes, int]] | None = None
) -> tuple[pd.DataFrame, int | None]:
    """Check `df` against the schema and return the normalised frame (sorted by time) and the PAN key version.

    Args:
        df: The file's rows (CSV values as text).
        csv: Whether rows came from a CSV file (problems then also give the line number).
        pan_key: Returns (HMAC key, key version); called only when the file has card_pan.

    Raises:
        DataLoadError: Listing the first MAX_PROBLEMS problems by row and column.
    """
    _check_columns(df)
    if df.empty:
        raise DataLoadError("the file has no rows")
    problems = _Problems(list(df.columns), csv)
    tx_id = _identifiers(df["tx_id"], "tx_id", problems)
    first = tx_id.groupby(tx_id, sort=False).cumcount().to_numpy() > 0
    first_row = pd.Series(np.arange(len(tx_id)), index=tx_id.index).groupby(tx_id, sort=False).transform("min")
    problems.add(first & (tx_id != "").to_numpy(), "tx_id", lambda r: f"duplicate of row {first_row.iat[r] + 1}")
    tx_time = _event_times(df["tx_time"], problems)
    terminal = _identifiers(df["terminal_id"], "terminal_id", problems)
    currency = _text(df["currency"]).str.upper()
    bad_currency = ~currency.isin(list(CURRENCY_EXPONENT)).to_numpy()
    problems.add(
        bad_currency, "currency", lambda r: f"{_shown(currency.iat[r])} is not one of {', '.join(CURRENCY_EXPONENT)}"
    )
    amount_minor = _amounts(df, currency, problems)
    tokens, key_version = _card_tokens(df, problems, pan_key or _no_key)
    out = pd.DataFrame(
        {
            "tx_id": tx_id.astype(str),
            "tx_time": tx_time,
            "card_token": tokens.astype(str),
            "terminal_id": terminal.astype(str),
            "amount_minor": amount_minor.astype(np.int64),
            "currency": currency.astype(str),
            **_coordinates(df, problems),
        }
    )
    if "is_fraud" in df:
        out["is_fraud"] = _labels(df["is_fraud"], problems)
    if problems.total:
        shown = min(problems.total, MAX_PROBLEMS)
        raise DataLoadError(f"{problems.total} problem(s) in the file; the first {shown} by row:", problems.lines())
    order = np.argsort(out["tx_time"].to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True), key_version


def _no_key() -> tuple[bytes, int]:
    raise DataLoadError("card_pan needs the PAN-tokenization key, and none was given")
