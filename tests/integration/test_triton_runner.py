"""Scoring's TritonRunner against the REAL tritonserver: same scores as onnxruntime, clear errors otherwise.

Concurrent vectors share Triton calls (micro-batching); a bad or late vector fails alone.
"""

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
from services.scoring.adapters.triton_runner import BATCH_ROWS, TritonRunner
from services.scoring.service_layer.ports import InferenceError
from tests.fixtures.triton import RunningTriton

pytestmark = pytest.mark.integration


def _calls_and_rows() -> tuple[float, float]:
    samples = {s.name: s.value for s in BATCH_ROWS.collect()[0].samples}
    return samples["fraud_scoring_triton_batch_rows_count"], samples["fraud_scoring_triton_batch_rows_sum"]


def test_batched_scores_match_onnxruntime_and_failures_are_inference_errors(
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
            calls_before, rows_before = _calls_and_rows()
            served = await asyncio.gather(*(runner.score(name, row.tolist(), timeout=10.0) for row in rows))
            local = predict_onnx(onnx_session(result.model_onnx_bytes), rows)
            assert float(np.max(np.abs(np.asarray(served) - local))) < 1e-6
            calls, sent = (a - b for a, b in zip(_calls_and_rows(), (calls_before, rows_before), strict=True))
            assert sent == len(rows) and calls <= len(rows) / 32  # 200 concurrent vectors: batches of up to 64
            alone = await runner.score(name, rows[7].tolist(), timeout=10.0)  # a lone vector: a call of its own
            assert abs(alone - local[7]) < 1e-6
            # In one batch window: a short vector, and one whose budget is spent, fail; the others are scored.
            mixed = await asyncio.gather(
                runner.score(name, rows[0].tolist()[:-1], timeout=5.0),
                runner.score(name, rows[1].tolist(), timeout=0.0),
                *(runner.score(name, row.tolist(), timeout=5.0) for row in rows[2:6]),
                return_exceptions=True,
            )
            assert isinstance(mixed[0], InferenceError) and name in str(mixed[0])
            assert isinstance(mixed[1], InferenceError) and "no time left" in str(mixed[1])
            assert np.allclose(mixed[2:], local[2:6], atol=1e-6)
            # A caller that gives up leaves the others' answers intact.
            waiting = [asyncio.ensure_future(runner.score(name, row.tolist(), timeout=5.0)) for row in rows[:4]]
            await asyncio.sleep(0)
            waiting[0].cancel()
            done = await asyncio.gather(*waiting, return_exceptions=True)
            assert isinstance(done[0], asyncio.CancelledError) and np.allclose(done[1:], local[1:4], atol=1e-6)
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
