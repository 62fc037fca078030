"""ModelRunner over Triton's gRPC API: KServe v2 ModelInfer with raw tensor contents.

The request is built directly on Triton's generated gRPC stub (shipped in tritonclient) rather than through
`tritonclient.grpc.aio.InferenceServerClient.infer`, whose per-call wrapping (InferInput, InferResult, header
handling) is pure Python on the hot path; the wire request is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from services.scoring.service_layer.ports import InferenceError

INPUT, OUTPUT = "features", "probability"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class TritonRunner:
    """Scores one vector per call; Triton's dynamic batching merges concurrent calls."""

    def __init__(self, url: str) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.max_receive_message_length", -1)]
        self._channel = grpc.aio.insecure_channel(url, options=options)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        request = service_pb2.ModelInferRequest(model_name=triton_model_name)
        tensor = request.inputs.add(name=INPUT, datatype="FP32")
        tensor.shape.extend((1, len(values)))
        request.outputs.add(name=OUTPUT)
        request.raw_input_contents.append(np.asarray(values, dtype=np.float32).tobytes())
        try:
            response = await self._stub.ModelInfer(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise InferenceError(f"{triton_model_name}: [{exc.code().name}] {exc.details()}") from exc
        outputs = {o.name: i for i, o in enumerate(response.outputs)}
        index = outputs.get(OUTPUT)
        if index is None or index >= len(response.raw_output_contents):
            raise InferenceError(f"{triton_model_name}: no {OUTPUT} output in the response")
        if response.outputs[index].datatype != "FP32":
            raise InferenceError(f"{triton_model_name}: {OUTPUT} is {response.outputs[index].datatype}, not FP32")
        output = np.frombuffer(response.raw_output_contents[index], dtype=np.float32)
        if output.size != 1:
            raise InferenceError(f"{triton_model_name}: expected one probability, got shape {output.shape}")
        return float(output[0])

    async def close(self) -> None:
        await self._channel.close()
