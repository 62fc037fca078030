"""Scoring's TritonRunner against the REAL tritonserver: same scores as onnxruntime, clear errors otherwise."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from fraudml.datagen import generate
from fraudml.onnx_export import onnx_session, predict_onnx
from fraudml.train import train
from fraudshared.features import N_FEATURES, batch_features
from services.governance.adapters.triton_repository import TritonModelControl, remove_model, write_model
from services.scoring.adapters.triton_runner import TritonRunner
from services.scoring.service_layer.ports import InferenceError
from tests.fixtures.triton import RunningTriton

pytestmark = pytest.mark.integration


def test_one_vector_per_call_matches_onnxruntime_and_failures_are_inference_errors(
    triton_server: RunningTriton,
) -> None:
    result = train(generate(n_customers=150, n_terminals=1_500, n_days=30, seed=8), train_days=14)
    df = generate(n_customers=100, n_terminals=1_000, n_days=10, seed=9)
    df["card_token"] = "card-" + df["customer_id"].astype(str)
    rows = batch_features(df)[:200]
    name = f"runner-{uuid.uuid4().hex[:8]}"
    control = TritonModelControl(triton_server.grpc_url)
    write_model(triton_server.repo_dir, name, 1, result.model_onnx_bytes, N_FEATURES)
    control.load(name)

    async def run() -> None:
        runner = TritonRunner(triton_server.grpc_url)
        try:
            served = await asyncio.gather(*(runner.score(name, row.tolist(), timeout=10.0) for row in rows))
            local = predict_onnx(onnx_session(result.model_onnx_bytes), rows)
            assert float(np.max(np.abs(np.asarray(served) - local))) < 1e-6
            with pytest.raises(InferenceError, match="no-such-model"):
                await runner.score("no-such-model", rows[0].tolist(), timeout=5.0)
            with pytest.raises(InferenceError, match=name):  # the wrong number of features: Triton refuses
                await runner.score(name, rows[0].tolist()[:-1], timeout=5.0)
        finally:
            await runner.close()

    try:
        asyncio.run(run())
    finally:
        control.unload(name)
        remove_model(triton_server.repo_dir, name)
