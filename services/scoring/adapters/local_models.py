"""The ladder's second rung and the explainer: the same artifacts, in process, fetched from governance.

Artifacts are fetched by content address (GetModelArtifact) when a version starts serving (and again at each
readiness check until one is loaded, so a fetch that found governance down is retried), checked against their
sha256 before use, and kept per sha256. ONNX runs with onnxruntime on one thread; the explainer is the
native LightGBM model, whose `pred_contrib` gives per-feature contributions (tree SHAP) for reason codes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import grpc
import lightgbm as lgb
import numpy as np
import onnxruntime as ort
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from fraud.governance.v1 import governance_service_pb2 as gov
from fraud.governance.v1 import governance_service_pb2_grpc as gov_grpc
from fraudshared.grpc_channel import RECONNECT_OPTIONS
from fraudshared.identity.client import ClientCredential, secure_aio_channel
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.tls import service_credential_files
from fraudshared.telemetry import get_logger
from services.scoring.domain.catalog import ServingModel

log = get_logger(__name__)


class ArtifactMismatch(ValueError):
    """Fetched bytes do not hash to the content address asked for."""


class LocalModels:
    """In-process ONNX sessions and LightGBM explainers keyed by artifact sha256."""

    def __init__(self, governance_addr: str, files: CredentialFiles | None = None) -> None:
        """Fetch from governance at `governance_addr` as service:scoring (`files`, default: scoring's own).

        Raises:
            fraudshared.config.ConfigError: If scoring's certificate is not configured (names the variable).
        """
        files = files or service_credential_files("scoring")
        self._channel = secure_aio_channel(
            governance_addr,
            ClientCredential(ca=files.ca, files=files),
            options=[("grpc.max_receive_message_length", 64 << 20), *RECONNECT_OPTIONS],
        )
        self._stub = gov_grpc.GovernanceServiceStub(self._channel)
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._explainers: dict[str, lgb.Booster] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def prepare(self, model: ServingModel) -> None:
        """Start fetching what `model` needs, in the background (idempotent)."""
        for sha, build in (
            (model.artifact_sha256, self._build_session),
            (model.explainer_sha256, self._build_explainer),
        ):
            if sha and sha not in self._sessions and sha not in self._explainers and sha not in self._pending:
                task = asyncio.ensure_future(self._load(sha, build))
                self._pending[sha] = task
                task.add_done_callback(lambda _t, s=sha: self._pending.pop(s, None))

    async def wait_ready(self) -> None:
        """Wait for fetches under way (tests, start-up)."""
        if self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def _load(self, sha256: str, build: object) -> None:
        try:
            retrying = AsyncRetrying(stop=stop_after_attempt(5), wait=wait_exponential(0.2, max=3), reraise=True)
            async for attempt in retrying:
                with attempt:
                    response = await self._stub.GetModelArtifact(gov.GetModelArtifactRequest(sha256=sha256), timeout=10)
            content = response.content
            if hashlib.sha256(content).hexdigest() != sha256:
                raise ArtifactMismatch(f"artifact {sha256[:12]} does not match its sha256; not loaded")
            await asyncio.to_thread(build, sha256, content)  # type: ignore[arg-type]
            log.info("local copy ready sha256=%s", sha256[:12])
        except grpc.aio.AioRpcError as exc:  # governance not reachable (yet): readiness asks again
            log.warning("could not fetch artifact sha256=%s from governance: %s", sha256[:12], exc.code().name)
        except Exception:
            log.exception("could not load artifact sha256=%s; this rung stays unavailable for it", sha256[:12])

    def _build_session(self, sha256: str, content: bytes) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._sessions[sha256] = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])

    def _build_explainer(self, sha256: str, content: bytes) -> None:
        self._explainers[sha256] = lgb.Booster(model_str=content.decode())

    def score(self, sha256: str, values: Sequence[float]) -> float | None:
        """Probability from the in-process ONNX copy, or None when it is not loaded."""
        session = self._sessions.get(sha256)
        if session is None:
            return None
        matrix = np.asarray([values], dtype=np.float32)
        return float(session.run(None, {session.get_inputs()[0].name: matrix})[0].reshape(-1)[0])

    def contributions(self, sha256: str, values: Sequence[float]) -> list[float] | None:
        """Per-feature log-odds contributions (bias column dropped), or None without an explainer."""
        booster = self._explainers.get(sha256)
        if booster is None:
            return None
        row = booster.predict(np.asarray([values], dtype=np.float64), pred_contrib=True)
        return [float(v) for v in np.asarray(row).reshape(-1)[:-1]]

    async def close(self) -> None:
        await self._channel.close()
