"""ModelRunner over Triton's gRPC API (tritonclient.grpc.aio)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

from services.scoring.service_layer.ports import InferenceError

INPUT, OUTPUT = "features", "probability"


class TritonRunner:
    """Scores one vector per call; Triton's dynamic batching merges concurrent calls."""

    def __init__(self, url: str) -> None:
        self._client = triton.InferenceServerClient(url)

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        matrix = np.asarray([values], dtype=np.float32)
        tensor = triton.InferInput(INPUT, list(matrix.shape), "FP32")
        tensor.set_data_from_numpy(matrix)
        try:
            result = await self._client.infer(
                triton_model_name, [tensor], outputs=[triton.InferRequestedOutput(OUTPUT)], client_timeout=timeout
            )
        except InferenceServerException as exc:
            raise InferenceError(f"{triton_model_name}: {exc.message()}") from exc
        output = result.as_numpy(OUTPUT)
        if output is None or output.size != 1:
            raise InferenceError(f"{triton_model_name}: expected one probability, got {getattr(output, 'shape', None)}")
        return float(output.reshape(-1)[0])

    async def close(self) -> None:
        await self._client.close()
