"""Deploys a model version to Triton: repository entry, explicit load, warm-up; all or nothing.

Implements `services.governance.service_layer.ports.ModelServer` over `triton_repository` (the repository
writer and `TritonModelControl`, whose calls block, so they run in a worker thread). Errors say whether
Triton is unreachable (`ServingUnavailable`) or refused the model (`DeploymentFailed`); the use case then
calls `undeploy` (unload + remove the entry), so Triton never keeps a half-loaded version the registry does
not list. It decides, not this adapter, because another instance may have deployed the same version.

Model control needs Triton's admin key when Triton was started with one (only governance may load or unload
models): pass ``admin_key``, or set ``FRAUD_TRITON_ADMIN_KEY_FILE`` to the file holding it. A Triton that
refuses the key (missing or wrong) fails the deployment (`DeploymentFailed`), it is not "unavailable".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from pathlib import Path

from tritonclient.utils import InferenceServerException

from fraudshared.triton_admin import ADMIN_KEY_FILE_ENV, admin_key_from_env
from services.governance.adapters.triton_repository import (
    BACKENDS,
    ModelLoadError,
    TritonModelControl,
    remove_model,
    write_model,
)
from services.governance.domain.errors import DeploymentFailed, ServingUnavailable

__all__ = ["BACKENDS", "TritonDeployer"]
log = logging.getLogger(__name__)
# Every registered version gets its own Triton model name, so its one Triton version is always 1.
TRITON_VERSION = 1


class TritonDeployer:
    """Writes, loads and warms fraud models in one Triton server."""

    def __init__(
        self,
        grpc_url: str,
        repo_dir: Path,
        *,
        backend: str = "python",
        max_batch_size: int = 64,
        control: TritonModelControl | None = None,
        admin_key: str | None = None,
    ) -> None:
        """Targets Triton at ``grpc_url`` (``host:port``) serving the repository ``repo_dir``.

        Args:
            grpc_url: Triton's gRPC address.
            repo_dir: Triton's model repository (must be the directory the server was started with).
            backend: ``python`` or ``onnxruntime_onnx`` (see `triton_repository`).
            max_batch_size: Largest batch the dynamic batcher forms.
            control: Model control client (tests); built from ``grpc_url`` when omitted.
            admin_key: Triton's admin key for model control; when omitted, read from the file named by
                ``FRAUD_TRITON_ADMIN_KEY_FILE`` (none when that is unset).

        Raises:
            ConfigError: If ``FRAUD_TRITON_ADMIN_KEY_FILE`` names an unreadable file or one without a key.
        """
        self.grpc_url = grpc_url
        self.repo_dir = Path(repo_dir)
        self.backend = backend
        self.max_batch_size = max_batch_size
        if control is None:
            key = admin_key if admin_key is not None else admin_key_from_env()
            control = TritonModelControl(grpc_url, admin_key=key)
        self._control = control

    async def deploy(self, serving_name: str, onnx_model: bytes, n_features: int) -> None:
        await asyncio.to_thread(self._deploy, serving_name, onnx_model, n_features)

    async def undeploy(self, serving_name: str) -> None:
        await asyncio.to_thread(self._undo, serving_name)

    def is_ready(self, serving_name: str) -> bool:
        """Whether Triton reports the model ready."""
        return self._control.is_ready(serving_name)

    async def is_serving(self, serving_name: str) -> bool:
        """Whether Triton is up and reports the model ready (False when Triton is unreachable)."""
        try:
            return await asyncio.to_thread(self._control.is_ready, serving_name)
        except Exception:
            return False

    def close(self) -> None:
        """Closes the gRPC client."""
        self._control.close()

    def _deploy(self, serving_name: str, onnx_model: bytes, n_features: int) -> None:
        self._require_live()
        try:
            write_model(
                self.repo_dir, serving_name, TRITON_VERSION, onnx_model, n_features, self.backend, self.max_batch_size
            )
        except (OSError, ValueError) as exc:
            raise DeploymentFailed(f"cannot write {serving_name} into {self.repo_dir}: {exc}") from None
        try:
            # A version being restored (rollback) may still be loaded: warming it is enough, a reload is not free.
            if not self._control.is_ready(serving_name):
                self._control.load(serving_name)
            score = self._control.warm(serving_name)
            if not (math.isfinite(score) and 0.0 <= score <= 1.0):
                raise DeploymentFailed(f"{serving_name} warm-up returned {score}, not a probability")
        except ModelLoadError as exc:
            if _restricted(exc.__cause__):
                raise DeploymentFailed(
                    f"Triton refused to load {serving_name} for governance: the Triton admin key is missing or"
                    f" wrong (model management is restricted; see {ADMIN_KEY_FILE_ENV})"
                ) from None
            if _unavailable(exc.__cause__):
                raise ServingUnavailable(f"Triton at {self.grpc_url} is unavailable: {exc}") from None
            raise DeploymentFailed(str(exc)) from None
        except InferenceServerException as exc:
            if _unavailable(exc):
                raise ServingUnavailable(f"Triton at {self.grpc_url} is unavailable: {exc.message()}") from None
            raise DeploymentFailed(f"{serving_name} failed its warm-up inference: {exc.message()}") from None
        log.info("triton serves %s (backend %s, %d features)", serving_name, self.backend, n_features)

    def _require_live(self) -> None:
        try:
            live = self._control.client.is_server_live(client_timeout=5.0)
        except InferenceServerException as exc:
            raise ServingUnavailable(f"Triton at {self.grpc_url} is unavailable: {exc.message()}") from None
        if not live:
            raise ServingUnavailable(f"Triton at {self.grpc_url} is not live")

    def _undo(self, serving_name: str) -> None:
        # Best effort in both steps: the server may be gone, and the entry may never have been written.
        with contextlib.suppress(InferenceServerException):
            self._control.unload(serving_name)
        try:
            remove_model(self.repo_dir, serving_name)
        except OSError as exc:
            log.warning("could not remove %s from %s: %s", serving_name, self.repo_dir, exc)


def _unavailable(exc: BaseException | None) -> bool:
    if not isinstance(exc, InferenceServerException):
        return False
    if _restricted(exc):  # Triton answers a missing admin key with UNAVAILABLE
        return False
    status = str(exc.status() or "")
    return "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status


def _restricted(exc: BaseException | None) -> bool:
    return isinstance(exc, InferenceServerException) and "is restricted" in str(exc.message() or "")
