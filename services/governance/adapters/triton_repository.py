"""Triton model repository entries for fraud models, and model control over Triton's gRPC API.

Layout: ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/<version>/model.onnx`` (+ ``model.py`` for the
python backend). ``backend="python"`` serves through the Python backend of the pip tritonserver (model.py
runs the ONNX file with onnxruntime); ``backend="onnxruntime_onnx"`` writes ``platform: "onnxruntime_onnx"``
for NVIDIA's full server images. Both verify nothing at load time except through model.py, which checks the
file's sha256 against ``sha256_v<version>`` in the config parameters (recorded for both backends).

Writes are atomic: a new model directory, or a new version directory, is assembled under a dot-prefixed
temporary name (Triton ignores it) and renamed into place; config.pbtxt is replaced with os.replace.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from fraudshared.triton_admin import admin_headers

INPUT_NAME = "features"
OUTPUT_NAME = "probability"
BACKENDS = ("python", "onnxruntime_onnx")
TEMPLATE = Path(__file__).with_name("model_template.py")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ModelLoadError(RuntimeError):
    """Triton refused to load (or could not find) a model; the message is Triton's."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_text(model_name: str, n_features: int, shas: dict[int, str], backend: str, max_batch_size: int) -> str:
    """config.pbtxt for a fraud model: "features" FP32 [n_features] -> "probability" FP32 [1], batched.

    Args:
        model_name: Triton model name.
        n_features: Width of the feature vector.
        shas: sha256 of model.onnx per version present (each becomes parameter ``sha256_v<version>``).
        backend: "python" or "onnxruntime_onnx".
        max_batch_size: Largest batch the dynamic batcher forms (and the largest a client may send).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    runtime = 'backend: "python"' if backend == "python" else 'platform: "onnxruntime_onnx"'
    params = {f"sha256_v{v}": sha for v, sha in sorted(shas.items())}
    # intra_op_threads is read by our model.py; intra_op_thread_count by Triton's onnxruntime backend.
    params["intra_op_threads" if backend == "python" else "intra_op_thread_count"] = "1"
    parameters = "\n".join(f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }},' for k, v in params.items())
    return f"""name: "{model_name}"
{runtime}
max_batch_size: {max_batch_size}
version_policy: {{ all: {{}} }}
input [
  {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ {n_features} ] }}
]
output [
  {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 dims: [ 1 ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 0 }}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters [
{parameters.rstrip(",")}
]
"""


def _write_version_dir(target: Path, onnx_bytes: bytes, backend: str) -> None:
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(onnx_bytes)
    if backend == "python":
        shutil.copyfile(TEMPLATE, target / "model.py")


def _versions(model_dir: Path) -> dict[int, str]:
    return {
        int(p.name): _sha256((p / "model.onnx").read_bytes())
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / "model.onnx").is_file()
    }


def write_model(
    repo_dir: Path,
    model_name: str,
    version: int,
    onnx_bytes: bytes,
    n_features: int,
    backend: str = "python",
    max_batch_size: int = 64,
) -> Path:
    """Write (or add a version to) a model repository entry; returns the model directory.

    Writing the same bytes again is a no-op. A single writer per model name is assumed (governance).

    Raises:
        ValueError: For an unsafe name, a version < 1, an unknown backend, or an existing version whose
            model.onnx differs (a served file is never overwritten: use a new version or model name).
    """
    if not _NAME.match(model_name):
        raise ValueError(f"unsafe Triton model name {model_name!r}")
    if version < 1:
        raise ValueError(f"Triton versions start at 1, got {version}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    model_dir = repo_dir / model_name
    staging = repo_dir / f".{model_name}.{uuid.uuid4().hex[:12]}.tmp"
    if not model_dir.exists():
        _write_version_dir(staging / str(version), onnx_bytes, backend)
        config = config_text(model_name, n_features, {version: _sha256(onnx_bytes)}, backend, max_batch_size)
        (staging / "config.pbtxt").write_text(config)
        try:
            staging.rename(model_dir)
            return model_dir
        except OSError:  # created meanwhile: fall through and add the version to it
            shutil.rmtree(staging, ignore_errors=True)
    version_dir = model_dir / str(version)
    if version_dir.exists():
        if _sha256((version_dir / "model.onnx").read_bytes()) != _sha256(onnx_bytes):
            raise ValueError(f"{model_name} version {version} exists with different model.onnx")
    else:
        version_staging = model_dir / f".{version}.{uuid.uuid4().hex[:12]}.tmp"
        _write_version_dir(version_staging, onnx_bytes, backend)
        version_staging.rename(version_dir)
    config_tmp = model_dir / f".config.{uuid.uuid4().hex[:12]}.tmp"
    config_tmp.write_text(config_text(model_name, n_features, _versions(model_dir), backend, max_batch_size))
    os.replace(config_tmp, model_dir / "config.pbtxt")
    return model_dir


def remove_model(repo_dir: Path, model_name: str) -> None:
    """Remove a model's repository entry (unload it first); idempotent.

    The directory is first renamed to a dot-prefixed name, so Triton never sees a half-deleted model.
    """
    if not _NAME.match(model_name):
        raise ValueError(f"unsafe Triton model name {model_name!r}")
    model_dir = Path(repo_dir) / model_name
    if not model_dir.exists():
        return
    doomed = Path(repo_dir) / f".{model_name}.{uuid.uuid4().hex[:12]}.deleted"
    model_dir.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


class TritonModelControl:
    """Explicit model control and inference over Triton's gRPC API (tritonclient, blocking calls).

    A Triton started with an admin key (`fraudshared.triton_server`) answers the model-repository and
    model-config calls (load, unload, config) only with that key: pass it as ``admin_key``; it travels as
    gRPC metadata on those calls only, and is never logged or put in an error message.
    """

    def __init__(self, grpc_url: str, timeout_s: float = 60.0, *, admin_key: str | None = None) -> None:
        self.client = grpcclient.InferenceServerClient(grpc_url)
        self.timeout_s = timeout_s
        self._admin_headers = admin_headers(admin_key)
        self._batch_limits: dict[str, int] = {}

    def load(self, name: str) -> None:
        """Load (or reload) a model from the repository.

        Raises:
            ModelLoadError: With Triton's reason when the load fails; the model is then not ready.
        """
        self._batch_limits.pop(name, None)
        try:
            self.client.load_model(name, headers=self._admin_headers, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ModelLoadError(f"Triton could not load {name!r}: {exc.message()}") from exc

    def unload(self, name: str, wait_s: float = 10.0) -> None:
        """Unload a model (Triton finishes in-flight requests first); waits up to `wait_s` until not ready."""
        self._batch_limits.pop(name, None)
        self.client.unload_model(name, headers=self._admin_headers, client_timeout=self.timeout_s)
        deadline = time.monotonic() + wait_s
        while self.is_ready(name) and time.monotonic() < deadline:
            time.sleep(0.05)

    def is_ready(self, name: str, version: str = "") -> bool:
        """Whether the model (or one version) is loaded and ready to serve."""
        try:
            return bool(self.client.is_model_ready(name, version, client_timeout=self.timeout_s))
        except InferenceServerException:
            return False

    def max_batch_size(self, name: str) -> int:
        """The model's configured max_batch_size (asked once per load)."""
        if name not in self._batch_limits:
            config = self.client.get_model_config(
                name, headers=self._admin_headers, client_timeout=self.timeout_s
            ).config
            self._batch_limits[name] = int(config.max_batch_size)
        return self._batch_limits[name]

    def infer(self, name: str, matrix: np.ndarray, version: str = "") -> np.ndarray:
        """Fraud probabilities [N] (float32) for a [N, n_features] matrix, sent in max_batch_size chunks."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        chunk = max(1, self.max_batch_size(name))
        scores = []
        for start in range(0, len(matrix), chunk):
            part = matrix[start : start + chunk]
            tensor = grpcclient.InferInput(INPUT_NAME, list(part.shape), "FP32")
            tensor.set_data_from_numpy(part)
            result = self.client.infer(
                name,
                [tensor],
                model_version=version,
                outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)],
                client_timeout=self.timeout_s,
            )
            scores.append(result.as_numpy(OUTPUT_NAME).reshape(-1))
        return np.concatenate(scores) if scores else np.empty(0, dtype=np.float32)

    def warm(self, name: str) -> float:
        """One inference on a zero vector (first-call costs are paid here, not by a transaction)."""
        width = int(self.client.get_model_metadata(name, client_timeout=self.timeout_s).inputs[0].shape[-1])
        return float(self.infer(name, np.zeros((1, width), dtype=np.float32))[0])

    def close(self) -> None:
        self.client.close()
