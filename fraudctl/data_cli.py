"""``fraudctl data``: generate a synthetic card history, or load a user's own transactions (docs/data.md).

Heavy imports (pandas, numpy) happen inside the commands, so ``fraudctl --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudml.errors import FraudMLError

console = Console()
app = typer.Typer(no_args_is_help=True, help="Synthetic and user transaction data (Parquet under data/).")
SCENARIO_HELP = "Drift from --from-day on: new-fraud-pattern, spending-shift or new-region (docs/data.md)."


def _summary(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Parquet file to write (and <file>.sha256).")] = Path("data/tx.parquet"),
    customers: Annotated[int, typer.Option(min=1, help="Customers, one card each.")] = 400,
    terminals: Annotated[int | None, typer.Option(min=1, help="Terminals; default 10 x customers.")] = None,
    days: Annotated[int, typer.Option(min=1, help="Days of history.")] = 35,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD (UTC).")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="Seed: the same arguments give the same file.")] = 7,
    scenario: Annotated[str | None, typer.Option(help=SCENARIO_HELP)] = None,
    from_day: Annotated[
        int | None, typer.Option(help="First (0-based) day of the scenario; default days // 2.")
    ] = None,
) -> None:
    """Write a seeded synthetic history (the Fraud Detection Handbook's simulator), optionally with drift."""
    import pandas as pd

    from fraudml.datagen import generate as generate_history
    from fraudml.lineage import write_sha256_file

    if from_day is not None and scenario is None:
        raise FraudMLError("--from-day needs --scenario")
    try:
        pd.Timestamp(start)
        with console.status("generating"):
            df = generate_history(
                n_customers=customers,
                n_terminals=terminals or 10 * customers,
                n_days=days,
                start_date=start,
                seed=seed,
                scenario=scenario,
                from_day=from_day,
            )
    except ValueError as exc:
        raise FraudMLError(f"cannot generate: {exc}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(out)
    digest = write_sha256_file(out)
    counts = df["fraud_scenario"].value_counts().sort_index()
    _summary(
        f"wrote {out}",
        [
            ("transactions", f"{len(df):,}"),
            ("period", f"{df['tx_time'].min():%Y-%m-%d} .. {df['tx_time'].max():%Y-%m-%d} ({days} days)"),
            ("cards / terminals", f"{df['customer_id'].nunique():,} / {df['terminal_id'].nunique():,}"),
            ("fraud rate", f"{df['is_fraud'].mean():.2%}"),
            ("fraud by scenario", ", ".join(f"{k}: {v:,}" for k, v in counts.items() if k)),
            ("drift", f"{scenario} from day {from_day if from_day is not None else days // 2}" if scenario else "none"),
            ("file sha256", digest),
        ],
    )


@app.command()
def load(
    path: Annotated[Path, typer.Argument(help="Your CSV or Parquet file (schema: docs/data.md).")],
    out: Annotated[Path | None, typer.Option(help="Normalised Parquet to write; default data/<name>.parquet.")] = None,
) -> None:
    """Check a user's transactions against the schema, tokenize PANs, and write a normalised Parquet."""
    from fraudml.dataload import load as load_data

    with console.status(f"checking {path}"):
        loaded = load_data(path, out)
    frame = loaded.frame
    rows = [
        ("transactions", f"{len(frame):,}"),
        ("period", f"{frame['tx_time'].min().isoformat()} .. {frame['tx_time'].max().isoformat()}"),
        ("cards / terminals", f"{frame['card_token'].nunique():,} / {frame['terminal_id'].nunique():,}"),
        ("labels", f"yes, fraud rate {frame['is_fraud'].mean():.2%}" if loaded.labelled else "none (scoring only)"),
    ]
    if loaded.pan_key_version is not None:
        rows.append(("PANs", f"tokenized with key version {loaded.pan_key_version}; not written anywhere"))
    if loaded.dropped_columns:
        rows.append(("ignored columns", ", ".join(loaded.dropped_columns)))
    rows += [("file sha256", loaded.file_sha256), ("dataset sha256", loaded.dataset_sha256)]
    _summary(f"wrote {loaded.out_path}", rows)
