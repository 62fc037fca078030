"""Model artifacts for ``audit replay``: fetched by content address, checked, scored and explained in process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np


class ReplayError(Exception):
    """An input of the replay is unavailable (artifact missing or not matching its sha256)."""


class ArtifactSource(Protocol):
    def fetch(self, sha256: str) -> bytes:
        """The artifact's bytes (raises `ReplayError` when it is not available)."""
        ...


class Models:
    """ONNX sessions and explainers by artifact sha256, fetched once each and checked against the address."""

    def __init__(self, source: ArtifactSource) -> None:
        self._source = source
        self._sessions: dict[str, Any] = {}
        self._explainers: dict[str, Any] = {}

    def _bytes(self, sha256: str) -> bytes:
        content = self._source.fetch(sha256)
        if hashlib.sha256(content).hexdigest() != sha256:
            raise ReplayError(f"artifact {sha256[:12]}... does not hash to its address")
        return content

    def score(self, sha256: str, values: Iterable[float]) -> float:
        """Probability of fraud from the ONNX artifact (the platform's "features" -> "probability" contract)."""
        import onnxruntime as ort  # heavy; only replay needs it

        if sha256 not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            content = self._bytes(sha256)
            self._sessions[sha256] = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        session = self._sessions[sha256]
        matrix = np.asarray([list(values)], dtype=np.float32)
        return float(session.run(None, {session.get_inputs()[0].name: matrix})[0].reshape(-1)[0])

    def contributions(self, sha256: str, values: Iterable[float]) -> list[float]:
        """Per-feature log-odds contributions (tree SHAP) from the LightGBM explainer, bias dropped."""
        import lightgbm as lgb

        if sha256 not in self._explainers:
            self._explainers[sha256] = lgb.Booster(model_str=self._bytes(sha256).decode())
        row = self._explainers[sha256].predict(np.asarray([list(values)], dtype=np.float64), pred_contrib=True)
        return [float(v) for v in np.asarray(row).reshape(-1)[:-1]]
