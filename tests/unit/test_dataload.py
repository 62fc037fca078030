"""`fraudctl data load`: the documented schema, row/column errors, PAN tokenization, normalised Parquet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fraudctl.cli import app
from fraudml.datagen import generate
from fraudml.dataload import DataLoadError, load
from fraudml.dataschema import MAX_PROBLEMS
from fraudml.lineage import dataset_sha256
from fraudshared.pan_token import tokenize_pan
from services.ingest.domain.pan import PanTokenizer

KEY = bytes(range(32))
PAN_A, PAN_B = "4111111111111111", "5555555555554444"  # well-known test card numbers


def key() -> tuple[bytes, int]:
    return KEY, 3


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


GOOD_HEADER = "tx_id,tx_time,card_pan,terminal_id,amount,currency,is_fraud,note"
GOOD_ROWS = (
    f"t-2,2026-03-01T10:00:00+02:00,{PAN_A},T1,12.5,EUR,0,x",
    f"t-1,2026-03-01T07:30:00Z,{PAN_B},T2,1200,JPY,1,y",
    f"t-3,2026-03-01 09:00:00.25+01:00,{PAN_A},T1,0.07,GBP,0,z",
)


def test_good_csv_is_normalised_with_tokens_and_minor_units(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "mine.csv", GOOD_HEADER, *GOOD_ROWS)
    loaded = load(source, out_dir=tmp_path / "data", pan_key=key)
    df = loaded.frame
    assert loaded.out_path == tmp_path / "data" / "mine.parquet"
    assert list(df["tx_id"]) == ["t-1", "t-2", "t-3"]  # by event time in UTC: 07:30, 08:00, 08:00:00.25
    assert list(df["amount_minor"]) == [1200, 1250, 7]  # JPY has no minor unit; GBP/EUR have two
    assert str(df["tx_time"].dt.tz) == "UTC" and df["tx_time"].iloc[0] == pd.Timestamp("2026-03-01T07:30Z")
    assert list(df["is_fraud"]) == [1, 0, 0] and loaded.labelled
    # The same token ingest derives online, so a model's card state lines up with the live stream.
    assert df["card_token"].iloc[1] == tokenize_pan(KEY, PAN_A) == PanTokenizer(KEY).tokenize(PAN_A)
    assert loaded.pan_key_version == 3 and loaded.dropped_columns == ("note",)
    written = pq.read_table(loaded.out_path)
    assert written.schema.metadata[b"fraud.pan_key_version"] == b"3"
    assert PAN_A.encode() not in loaded.out_path.read_bytes() and "card_pan" not in written.column_names
    digest, _ = loaded.out_path.with_name("mine.parquet.sha256").read_text().split()
    assert digest == hashlib.sha256(loaded.out_path.read_bytes()).hexdigest() == loaded.file_sha256
    assert loaded.dataset_sha256 == dataset_sha256(pd.read_parquet(loaded.out_path), list(df.columns.drop("currency")))


def test_bad_rows_are_named_by_row_and_column_without_echoing_pans(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "bad.csv",
        GOOD_HEADER,
        GOOD_ROWS[0],
        f"t-2,2026-03-01T10:00:00,{PAN_A},T 1,12.345,EUR,2,x",
        "bad id!,yesterday,4111111111111112,T1,abc,XXX,,x",
    )
    with pytest.raises(DataLoadError) as caught:
        load(source, out_dir=tmp_path / "data", pan_key=key)
    details = list(caught.value.details)
    assert details == [
        "row 2 (line 3), column tx_id: duplicate of row 1",
        "row 2 (line 3), column tx_time: '2026-03-01T10:00:00' is not an ISO 8601 time with a zone (Z or +hh:mm)",
        "row 2 (line 3), column terminal_id: 'T 1' must match [A-Za-z0-9_:-]{1,64}",
        "row 2 (line 3), column amount: '12.345' has more decimals than EUR allows (2)",
        "row 2 (line 3), column is_fraud: '2' must be 0 or 1",
        "row 3 (line 4), column tx_id: 'bad id!' must match [A-Za-z0-9_:-]{1,64}",
        "row 3 (line 4), column tx_time: 'yesterday' is not an ISO 8601 time with a zone (Z or +hh:mm)",
        "row 3 (line 4), column card_pan: not a PAN (12-19 digits passing the Luhn check)",
        "row 3 (line 4), column amount: 'abc' is not a decimal amount like 12.34",
        "row 3 (line 4), column currency: 'XXX' is not one of EUR, USD, GBP, CHF, JPY, SEK, NOK, DKK, PLN, CZK, HUF, "
        "CAD, AUD",
        "row 3 (line 4), column is_fraud: '' must be 0 or 1",
    ]
    assert str(caught.value).startswith("11 problem(s)")
    assert not (tmp_path / "data").exists()  # nothing written
    assert not any("4111111111111112" in line for line in details)


def test_at_most_twenty_problems_are_listed_but_all_are_counted(tmp_path: Path) -> None:
    rows = [f"t{i},2026-03-01T10:00:00Z,{PAN_A},T1,-1,EUR" for i in range(30)]
    source = write_csv(tmp_path / "many.csv", "tx_id,tx_time,card_pan,terminal_id,amount,currency", *rows)
    with pytest.raises(DataLoadError, match=r"^30 problem") as caught:
        load(source, out_dir=tmp_path, pan_key=key)
    assert len(caught.value.details) == MAX_PROBLEMS
    assert caught.value.details[-1].startswith("row 20 (line 21), column amount")


def test_missing_or_ambiguous_columns_are_rejected(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "cols.csv", "tx_id,tx_time,card_pan,card_token,amount", "a,b,c,d,e")
    with pytest.raises(DataLoadError, match="required columns") as caught:
        load(source, out_dir=tmp_path, pan_key=key)
    assert caught.value.details == (
        "missing required column terminal_id",
        "missing required column currency",
        "give exactly one of card_pan (tokenized on load) or card_token, not both",
    )


def test_a_csv_without_its_header_does_not_echo_the_pan_it_starts_with(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "headless.csv", GOOD_ROWS[0], GOOD_ROWS[1])
    with pytest.raises(DataLoadError, match="required columns") as caught:
        load(source, out_dir=tmp_path, pan_key=key)
    assert PAN_A not in str(caught.value) and "<digits redacted>" in str(caught.value)


def test_a_pan_in_the_token_column_is_refused_and_redacted(tmp_path: Path) -> None:
    header = "tx_id,tx_time,card_token,terminal_id,amount_minor,currency"
    source = write_csv(
        tmp_path / "tok.csv", header, f"t1,2026-03-01T10:00:00Z,{PAN_A},T1,100,EUR", f"t2,x{PAN_B},c,T1,1,EUR"
    )
    with pytest.raises(DataLoadError) as caught:
        load(source, out_dir=tmp_path, pan_key=key)
    text = "\n".join(caught.value.details)
    assert "row 1, " not in text and "row 1 (line 2), column card_token: looks like a PAN" in text
    assert PAN_A not in text and PAN_B not in text and "<digits redacted>" in text


def test_generated_parquet_loads_and_scoring_only_data_is_allowed(tmp_path: Path) -> None:
    source = tmp_path / "gen.parquet"
    generate(n_customers=30, n_terminals=300, n_days=3, seed=1).drop(columns="is_fraud").to_parquet(source)
    loaded = load(source, tmp_path / "out" / "gen.parquet", pan_key=key)
    assert not loaded.labelled and "is_fraud" not in loaded.frame
    assert loaded.frame["card_token"].str.fullmatch(r"ct_[0-9a-f]{32}").all()
    assert set(loaded.dropped_columns) == {"customer_id", "fraud_scenario"}
    assert loaded.frame["terminal_lat"].between(48.8, 49.8).all()


def test_naive_parquet_timestamps_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "naive.parquet"
    frame = generate(n_customers=10, n_terminals=100, n_days=2, seed=1)
    frame.assign(tx_time=frame["tx_time"].dt.tz_localize(None)).to_parquet(source)
    with pytest.raises(DataLoadError) as caught:
        load(source, out_dir=tmp_path, pan_key=key)
    assert caught.value.details == ("row 1, column tx_time: timestamps have no time zone",)


def test_cli_load_reports_one_line_errors_and_never_prints_pans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_SECRETS_FILE", str(tmp_path / "secrets.json"))  # development key store
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    good = write_csv(tmp_path / "good.csv", GOOD_HEADER, *GOOD_ROWS)
    result = CliRunner().invoke(app, ["data", "load", str(good), "--out", str(tmp_path / "good.parquet")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "good.parquet").is_file() and "key version 1" in result.output
    bad = write_csv(tmp_path / "bad.csv", GOOD_HEADER, f"t1,2026-03-01T10:00:00Z,{PAN_A},T1,1.999,EUR,0,x")
    result = CliRunner().invoke(app, ["data", "load", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "row 1 (line 2), column amount: '1.999' has more decimals than EUR allows (2)" in result.output
    assert PAN_A not in result.output and PAN_B not in result.output
