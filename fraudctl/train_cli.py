"""``fraudctl train``: train ours + the random-forest baseline + the autoencoder, write a model directory.

The directory (model.onnx, anomaly.onnx, explainer.txt, metadata.json, model_card.html) is what
``fraudctl model register --from <dir>`` reads. Heavy imports happen inside the command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fraudml.errors import TrainingError

console = Console()
NAME_VERSION = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)-(?P<version>[0-9]+\.[0-9]+\.[0-9]+)$")
DEFAULT_NAME, DEFAULT_VERSION = "card-fraud-gbdt", "1.0.0"
ROWS = (
    ("auc_roc", "AUC ROC"),
    ("average_precision", "average precision"),
    ("card_precision_at_100", "card precision@100"),
    ("train_seconds", "train seconds"),
)


def _read(data: Path) -> tuple[Any, Any]:
    """The frame and its card-key function: card_token (loaded data) or customer_id (generated data)."""
    import pandas as pd

    from fraudml.train import customer_card_key

    if data.suffix.lower() not in (".parquet", ".pq"):
        raise TrainingError(f"{data}: train reads Parquet; convert it with `fraudctl data load {data}` first")
    if not data.is_file():
        raise TrainingError(f"{data}: no such file (generate one with `fraudctl data generate`)")
    try:
        df = pd.read_parquet(data)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{data}: cannot read it as Parquet ({type(exc).__name__})") from None
    missing = [c for c in ("tx_id", "tx_time", "terminal_id", "amount_minor") if c not in df]
    if missing:
        raise TrainingError(f"{data}: missing column(s) {', '.join(missing)}; see docs/data.md")
    if "is_fraud" not in df:
        raise TrainingError(f"{data}: no is_fraud labels; this data can be scored but not trained on")
    if "card_token" in df:
        return df, lambda frame: frame["card_token"]
    if "customer_id" in df:
        return df, customer_card_key
    raise TrainingError(f"{data}: no card_token column; tokenize PANs with `fraudctl data load {data}`")


def _table(result: Any) -> Table:
    table = Table(title="test set: ours vs the Handbook's random forest vs the autoencoder")
    for header in ("metric", "ours (LightGBM)", "random forest", "autoencoder"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for key, label in ROWS:
        values = (result.metrics.get(key), result.baseline_metrics.get(key), result.anomaly_metrics.get(key))
        table.add_row(
            label, *("" if v is None else f"{v:.4f}" if key != "train_seconds" else f"{v:.1f}" for v in values)
        )
    return table


def train(
    data: Annotated[Path, typer.Option(help="Parquet from `fraudctl data generate` or `fraudctl data load`.")],
    out: Annotated[Path | None, typer.Option(help="Model directory; default models/<name>-<version>.")] = None,
    name: Annotated[str | None, typer.Option(help=f"Model name [default: from --out, else {DEFAULT_NAME}].")] = None,
    version: Annotated[
        str | None, typer.Option(help=f"Semantic version [default: from --out, else {DEFAULT_VERSION}].")
    ] = None,
    train_days: Annotated[
        int | None, typer.Option(min=1, help="Training days; default all before delay + test.")
    ] = None,
    delay_days: Annotated[int, typer.Option(min=0, help="Days whose labels are not known yet at training.")] = 7,
    test_days: Annotated[int, typer.Option(min=1, help="Last days of the data, for evaluation.")] = 7,
    seed: Annotated[int, typer.Option(help="Seed of the three models.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
) -> None:
    """Train on a time split, compare with the random-forest baseline, and write the model directory."""
    import pandas as pd

    from fraudml import artifacts, lineage
    from fraudml.model_card import render_model_card
    from fraudml.train import train as train_models

    parsed = NAME_VERSION.match(out.name) if out is not None else None
    name = name or (parsed["name"] if parsed else DEFAULT_NAME)
    version = version or (parsed["version"] if parsed else DEFAULT_VERSION)
    if not NAME_VERSION.match(f"{name}-{version}"):
        raise TrainingError(f"name {name!r} / version {version!r}: use [a-z0-9-] and MAJOR.MINOR.PATCH")
    out = out or Path("models") / f"{name}-{version}"
    df, card_key = _read(data)
    if out.exists() and any(out.iterdir()) and not force:  # fail before minutes of training, not after
        raise TrainingError(f"{out} already holds a model; choose a new --version/--out, or pass --force")
    if train_days is None:
        span = (df["tx_time"].max().floor("D") - df["tx_time"].min().floor("D")) // pd.Timedelta(days=1) + 1
        train_days = span - delay_days - test_days
        if train_days < 1:
            raise TrainingError(
                f"{data} spans {span} days; delay ({delay_days}) + test ({test_days}) leave none to train on"
            )
    with console.status(f"training on {len(df):,} transactions (LightGBM, random forest, autoencoder)"):
        try:
            result = train_models(
                df, card_key=card_key, train_days=train_days, delay_days=delay_days, test_days=test_days, seed=seed
            )
        except ValueError as exc:
            raise TrainingError(f"cannot train on {data}: {exc}") from None
    dataset = {"path": str(data), "file_sha256": lineage.file_sha256(data), "rows": len(df)}
    metadata = artifacts.build_metadata(
        result,
        model_name=name,
        version=version,
        dataset=dataset,
        code_revision=lineage.code_revision(),
        code_dirty=lineage.code_is_dirty(),
    )
    artifacts.write_model_dir(result, out, metadata, force=force)
    render_model_card(metadata, out / artifacts.CARD_FILE)
    console.print(_table(result))
    ours, rf = result.metrics, result.baseline_metrics
    verdict = all(ours[k] > rf[k] for k in ("average_precision", "card_precision_at_100"))
    console.print(
        f"ours {'beats' if verdict else 'does NOT beat'} the random forest on average precision and card precision@100"
    )
    console.print(
        f"ONNX parity: max |native - onnxruntime| = {ours['parity_max_abs_diff']:.2e} "
        f"over {ours['parity_rows']:,.0f} rows"
    )
    console.print(
        f"thresholds review {result.thresholds['review']:.4f}, decline {result.thresholds['decline']:.4f}; "
        f"split {result.data_split['train']} train, test {result.data_split['test']}"
    )
    console.print(f"wrote {out}/ (model.onnx, anomaly.onnx, explainer.txt, metadata.json, {artifacts.CARD_FILE})")
