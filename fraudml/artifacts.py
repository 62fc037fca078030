"""A trained model's directory: model.onnx, anomaly.onnx, explainer.txt, metadata.json (+ model_card.html).

`fraudctl train` writes it and `fraudctl model register --from <dir>` reads it; the keys of metadata.json
are documented in docs/models.md and only ever added to (METADATA_SCHEMA_VERSION counts breaking changes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudml.errors import TrainingError

if TYPE_CHECKING:  # fraudml.train pulls in LightGBM; readers of a model directory do not need it
    from fraudml.train import TrainResult

METADATA_SCHEMA_VERSION = 1
MODEL_FILE, ANOMALY_FILE, EXPLAINER_FILE, METADATA_FILE = "model.onnx", "anomaly.onnx", "explainer.txt", "metadata.json"
CARD_FILE = "model_card.html"


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None (strict JSON has neither), tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _artifact(name: str, data: bytes) -> dict[str, Any]:
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def build_metadata(
    result: TrainResult,
    *,
    model_name: str,
    version: str,
    dataset: dict[str, Any],
    code_revision: str,
    code_dirty: bool | None = None,
) -> dict[str, Any]:
    """The metadata.json document of a trained model (see docs/models.md for every key)."""
    explainer = result.explainer_model_text.encode()
    return _plain(
        {
            "schema_version": METADATA_SCHEMA_VERSION,
            "model_name": model_name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "code_revision": code_revision,
            "code_dirty": code_dirty,
            "feature_set_version": result.feature_set_version,
            "feature_names": list(result.feature_names),
            "dataset_sha256": result.dataset_sha256,
            "dataset": {**dataset, "sha256": result.dataset_sha256},
            "model_sha256": result.sha256,
            "artifacts": {
                "model": _artifact(MODEL_FILE, result.model_onnx_bytes),
                "anomaly": _artifact(ANOMALY_FILE, result.anomaly_onnx_bytes),
                "explainer": _artifact(EXPLAINER_FILE, explainer),
            },
            "params": result.params,
            "baseline_params": result.baseline_params,
            "anomaly_params": result.anomaly_params,
            "metrics": result.metrics,
            "baseline_metrics": result.baseline_metrics,
            "anomaly_metrics": result.anomaly_metrics,
            "thresholds": result.thresholds,
            "data_split": result.data_split,
            "split": result.split,
            "reference_profile": result.reference_profile,
            "pr_curve": result.pr_curve,
            "baseline_pr_curve": result.baseline_pr_curve,
            "anomaly_pr_curve": result.anomaly_pr_curve,
            "feature_importance": result.feature_importance,
        }
    )


def write_model_dir(result: TrainResult, out: Path, metadata: dict[str, Any], *, force: bool = False) -> Path:
    """Write the artifacts and metadata into `out`, all or nothing (assembled aside, then renamed).

    Raises:
        TrainingError: If `out` exists and is not empty, unless `force` (a version's files never change silently).
    """
    if out.exists() and any(out.iterdir()) and not force:
        raise TrainingError(f"{out} already holds a model; choose a new --version/--out, or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / MODEL_FILE).write_bytes(result.model_onnx_bytes)
    (staging / ANOMALY_FILE).write_bytes(result.anomaly_onnx_bytes)
    (staging / EXPLAINER_FILE).write_text(result.explainer_model_text, encoding="utf-8")
    (staging / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8"
    )
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """metadata.json of a model directory.

    Raises:
        TrainingError: If it is missing or not JSON.
    """
    path = model_dir / METADATA_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: cannot read model metadata ({type(exc).__name__})") from None
    return data
