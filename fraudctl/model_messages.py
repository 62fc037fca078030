"""Messages of ``fraudctl model``: RegisterModel requests from a training run, and registry views for cards.

Kept apart from the commands (fraudctl/model_cli.py) so the demo and the CLI build requests the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseDict, ParseError

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraudctl.caller import CliError


class ModelCliError(CliError):
    """A one-line, user-actionable failure of a ``model`` command."""


def read_training_run(directory: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """``metadata.json``, ``model.onnx`` and (optional) ``explainer.txt`` written by ``fraudctl train``."""
    try:
        metadata = json.loads((directory / "metadata.json").read_text())
        onnx_model = (directory / "model.onnx").read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelCliError(f"{directory} is not a training run (metadata.json + model.onnx): {exc}") from None
    explainer = directory / "explainer.txt"
    return metadata, onnx_model, explainer.read_bytes() if explainer.is_file() else b""


def _first(metadata: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if metadata.get(key) not in (None, ""):
            return metadata[key]
    return default


def _split(value: Any) -> dict[str, str]:
    # "period -> start/end": accept {"train": "a/b"}, {"train": {"start": a, "end": b}} or {"train": [a, b]}.
    if not isinstance(value, Mapping):
        return {}
    split: dict[str, str] = {}
    for period, bounds in value.items():
        if isinstance(bounds, Mapping):
            split[str(period)] = f"{bounds.get('start', '')}/{bounds.get('end', '')}"
        elif isinstance(bounds, list | tuple) and len(bounds) == 2:
            split[str(period)] = f"{bounds[0]}/{bounds[1]}"
        else:
            split[str(period)] = str(bounds)
    return split


def _profile(value: Any) -> events_pb.ReferenceProfile | None:
    # The protobuf JSON form, or {feature: {"bin_edges": [...], "frequencies": [...]}}.
    if not isinstance(value, Mapping) or not value:
        return None
    profile = events_pb.ReferenceProfile()
    try:
        return ParseDict(value, profile, ignore_unknown_fields=True) if "histograms" in value else _by_feature(value)
    except (ParseError, TypeError, ValueError, AttributeError) as exc:
        raise ModelCliError(f"metadata.json reference_profile is not readable: {exc}") from None


def _by_feature(value: Mapping[str, Any]) -> events_pb.ReferenceProfile:
    profile = events_pb.ReferenceProfile(rows=int(value.get("rows", 0) or 0))
    for feature, hist in value.items():
        if isinstance(hist, Mapping):
            edges, freqs = hist.get("bin_edges") or hist.get("edges"), hist.get("frequencies") or hist.get("freqs")
            profile.histograms.add(feature=str(feature), bin_edges=edges or [], frequencies=freqs or [])
    return profile


def register_request(
    metadata: Mapping[str, Any], onnx_model: bytes, explainer: bytes, *, name: str | None, version: str | None
) -> pb.RegisterModelRequest:
    """The RegisterModel request for a training run (keys read defensively; see docs/models.md).

    The registrant is not a field: governance records the authenticated caller.
    """
    thresholds = _first(metadata, "thresholds", default={}) or {}
    model_name = name or _first(metadata, "model_name", "name")
    model_version = version or _first(metadata, "version", "model_version")
    if not model_name or not model_version:
        raise ModelCliError("metadata.json names no model_name/version: pass --name and --version")
    metrics = {k: float(v) for k, v in (_first(metadata, "metrics", default={}) or {}).items() if _number(v)}
    if not all(_number(thresholds.get(k)) for k in ("review", "decline")):
        raise ModelCliError("metadata.json has no thresholds {review, decline}")
    request = pb.RegisterModelRequest(
        model_name=model_name,
        version=model_version,
        onnx_model=onnx_model,
        explainer_model=explainer,
        dataset_sha256=str(_first(metadata, "dataset_sha256", default="")),
        feature_set_version=str(_first(metadata, "feature_set_version", default="")),
        feature_names=[str(n) for n in _first(metadata, "feature_names", default=[])],
        code_revision=str(_first(metadata, "code_revision", "git_commit", default="")),
        params={str(k): str(v) for k, v in (_first(metadata, "params", default={}) or {}).items()},
        metrics=metrics,
        thresholds=common.Thresholds(review=float(thresholds["review"]), decline=float(thresholds["decline"])),
        data_split=_split(_first(metadata, "data_split", "split", default={})),
    )
    profile = _profile(_first(metadata, "reference_profile", default=None))
    if profile is not None:
        request.reference_profile.CopyFrom(profile)
    return request


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- printing ---------------------------------------------------------------------------------------------


def stage_name(value: int) -> str:
    return pb.ModelStage.Name(value).removeprefix("MODEL_STAGE_").lower()


def role_name(value: int) -> str:
    return "" if not value else events_pb.DeploymentRole.Name(value).removeprefix("DEPLOYMENT_ROLE_").lower()


def format_when(stamp: Any) -> str:
    return stamp.ToDatetime(UTC).isoformat(timespec="seconds") if stamp.seconds or stamp.nanos else ""


def card_metadata(model: pb.ModelVersion) -> dict[str, Any]:
    """The registry's view of a version in metadata.json's vocabulary (what the model card renders)."""
    return {
        "model_name": model.model_name,
        "version": model.version,
        "stage": stage_name(model.stage),
        "role": role_name(model.role),
        "artifact_sha256": model.artifact_sha256,
        "explainer_artifact_sha256": model.explainer_artifact_sha256,
        "dataset_sha256": model.dataset_sha256,
        "feature_set_version": model.feature_set_version,
        "feature_names": list(model.feature_names),
        "code_revision": model.code_revision,
        "params": dict(model.params),
        "metrics": dict(model.metrics),
        "thresholds": {"review": model.thresholds.review, "decline": model.thresholds.decline},
        "model_sha256": model.artifact_sha256,
        "registered_by": model.registered_by,
        "registered_at": format_when(model.registered_at),
        "data_split": dict(model.data_split),
        "validation_checks": dict(model.validation_checks),
    }


def card_lineage(found: pb.GetModelResponse) -> dict[str, str]:
    """The registry's lineage of a version as the card's key/value rows."""
    model = found.model
    rows = {
        "stage": stage_name(model.stage) + (f" ({role_name(model.role)})" if model.role else ""),
        "registered": f"{format_when(model.registered_at)} by {model.registered_by}",
        "explainer sha256": model.explainer_artifact_sha256 or "none",
        "validation": "; ".join(f"{k}: {v}" for k, v in sorted(model.validation_checks.items())),
        "reference profile": f"{len(found.reference_profile.histograms)} histograms over "
        f"{found.reference_profile.rows} rows",
    }
    for h in found.history:
        role = role_name(h.role) + (f" {h.canary_percent}%" if h.canary_percent else "")
        detail = ", ".join(x for x in (role, h.actor and f"by {h.actor}", h.other_version, h.reason) if x)
        rows[f"#{h.stream_seq} {h.kind}"] = f"{format_when(h.at)} {detail}".strip()
    return rows
