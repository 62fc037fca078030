"""Load a user's own transactions (CSV or Parquet): read, check (`fraudml.dataschema`), write normalised Parquet.

A bad file is rejected as a whole, nothing written. PANs are tokenized with the platform's key (the same
HMAC as ingest), so the normalised file, and any model trained on it, never holds a PAN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraudml.dataschema import normalize
from fraudml.errors import DataLoadError
from fraudml.lineage import DATASET_COLUMNS, dataset_sha256, write_sha256_file
from fraudshared.pan_token import TOKEN_KEY_NAME, TOKEN_KEY_PATH

OUTPUT_COLUMNS = (
    "tx_id",
    "tx_time",
    "card_token",
    "terminal_id",
    "amount_minor",
    "currency",
    "terminal_lat",
    "terminal_lon",
    "is_fraud",
)


@dataclass(frozen=True)
class LoadedData:
    """A normalised data set and where it was written."""

    frame: pd.DataFrame
    out_path: Path
    file_sha256: str
    dataset_sha256: str
    labelled: bool
    pan_key_version: int | None
    dropped_columns: tuple[str, ...]


def read_table(path: Path) -> tuple[pd.DataFrame, bool]:
    """Read CSV (every value as text) or Parquet; returns the frame and whether it was CSV.

    Raises:
        DataLoadError: If the file is missing, of another format, or unreadable.
    """
    if not path.is_file():
        raise DataLoadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[]), True
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path), False
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataLoadError(f"{path}: cannot read it as {suffix[1:].upper()} ({type(exc).__name__})") from None
    raise DataLoadError(f"{path}: expected a .csv or .parquet file")


def secrets_pan_key() -> tuple[bytes, int]:
    """The current PAN-tokenization key from the secrets port (Vault, or the development file).

    Raises:
        DataLoadError: If the key cannot be read.
    """
    from fraudshared.secrets import SecretsError, secret_store_from_env

    try:
        key_hex, version = secret_store_from_env().get_version(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
        return bytes.fromhex(key_hex), version
    except (SecretsError, ValueError) as exc:
        raise DataLoadError(f"cannot read the PAN-tokenization key: {exc}") from None


def default_out_path(source: Path, out_dir: Path) -> Path:
    """data/<stem>.parquet, or data/<stem>.normalized.parquet when that would overwrite the source."""
    out = out_dir / f"{source.stem}.parquet"
    return out_dir / f"{source.stem}.normalized.parquet" if out.resolve() == source.resolve() else out


def load(
    source: Path,
    out: Path | None = None,
    *,
    out_dir: Path = Path("data"),
    pan_key: Callable[[], tuple[bytes, int]] = secrets_pan_key,
) -> LoadedData:
    """Read, check, normalise and write a user's data set; the original file is never modified.

    Raises:
        DataLoadError: If the file cannot be read or breaks the schema (nothing is written then).
    """
    raw, csv = read_table(source)
    frame, key_version = normalize(raw, csv=csv, pan_key=pan_key)
    out = out or default_out_path(source, out_dir)
    if out.resolve() == source.resolve():
        raise DataLoadError(f"{out}: the output would overwrite the input; choose another --out")
    content = dataset_sha256(frame, [c for c in DATASET_COLUMNS if c in frame])
    _write_parquet(frame, out, {"source": source.name, "dataset_sha256": content, "pan_key_version": key_version})
    return LoadedData(
        frame=frame,
        out_path=out,
        file_sha256=write_sha256_file(out),
        dataset_sha256=content,
        labelled="is_fraud" in frame,
        pan_key_version=key_version,
        dropped_columns=tuple(
            str(c) for c in raw.columns if c not in OUTPUT_COLUMNS and c not in ("card_pan", "amount")
        ),
    )


def _write_parquet(frame: pd.DataFrame, out: Path, lineage: dict[str, object]) -> None:
    """Write atomically (temporary file, then rename) with the lineage in the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta.update({f"fraud.{k}".encode(): str(v).encode() for k, v in lineage.items() if v is not None})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    tmp.replace(out)
