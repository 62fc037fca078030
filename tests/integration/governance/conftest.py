"""Fixtures of the governance service tests: model artifacts, service environments, a running instance."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from fraudshared.nats_server import NatsServer
from services.governance.adapters.triton_repository import TritonModelControl
from tests.integration.governance.governance_support import FEATURES, Artifacts, Instance, governance


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    lightgbm = pytest.importorskip("lightgbm")
    from fraudml.onnx_export import to_onnx

    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 1.0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    return Artifacts(to_onnx(model, len(FEATURES)), model.booster_.model_to_string().encode())


@pytest.fixture
def env_for(nats_server: NatsServer, triton_server: object, tmp_path: Path) -> Iterator[Callable[..., dict[str, str]]]:
    saved = dict(os.environ)

    def make(instance: str, triton_grpc_url: str | None = None) -> dict[str, str]:
        return {
            "FRAUD_NATS_URL": nats_server.url,
            "FRAUD_VAR_DIR": str(tmp_path / instance),  # own registry database per instance
            "FRAUD_ARTIFACT_DIR": str(tmp_path / "artifacts"),  # instances share the artifact store
            "FRAUD_GOVERNANCE_GRPC_PORT": "0",
            "FRAUD_TRITON_GRPC_URL": triton_grpc_url or triton_server.grpc_url,  # type: ignore[attr-defined]
            "FRAUD_TRITON_MODEL_REPO": str(triton_server.repo_dir),  # type: ignore[attr-defined]
        }

    yield make
    os.environ.clear()
    os.environ.update(saved)


@pytest_asyncio.fixture(loop_scope="session")
async def instance(env_for: Callable[..., dict[str, str]]) -> AsyncIterator[Instance]:
    async with governance(env_for("a")) as running:
        yield running


@pytest.fixture
def triton(triton_server: object) -> Iterator[TritonModelControl]:
    control = TritonModelControl(triton_server.grpc_url)  # type: ignore[attr-defined]
    yield control
    control.close()
