"""Checksums and revisions that tie a model to its data and code (light: no ML imports)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pandas as pd

DATASET_COLUMNS = ("tx_id", "tx_time", "card_token", "terminal_id", "amount_minor", "is_fraud")


def dataset_sha256(df: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> str:
    """SHA-256 over the named columns in row order, independent of pandas/pyarrow versions and file formats."""
    digest = hashlib.sha256()
    for name in columns:
        column = df[name]
        digest.update(name.encode() + b"\x00")
        if pd.api.types.is_datetime64_any_dtype(column):
            values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype("<i8")
            digest.update(values.tobytes())
        elif pd.api.types.is_integer_dtype(column):
            digest.update(column.to_numpy().astype("<i8").tobytes())
        else:
            digest.update("\x1f".join(column.astype(str)).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (what `sha256sum` prints)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sha256_file(path: Path) -> str:
    """Write `<path>.sha256` in `sha256sum -c` format; returns the digest."""
    digest = file_sha256(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest


def _git(*args: str, cwd: Path | None) -> str | None:
    cwd = cwd or Path(__file__).resolve().parent  # the checkout the training code runs from, not the shell's cwd
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def code_revision(cwd: Path | None = None) -> str:
    """The git commit of the code (`git rev-parse HEAD` in this package's checkout), or "unknown"."""
    return _git("rev-parse", "HEAD", cwd=cwd) or "unknown"


def code_is_dirty(cwd: Path | None = None) -> bool | None:
    """True when tracked files differ from that commit (the model may not be reproducible from it)."""
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return None if status is None else bool(status)
