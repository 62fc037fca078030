"""ModelRunner over Triton's gRPC API: KServe v2 ModelInfer with raw tensor contents, micro-batched.

The request is built directly on Triton's generated gRPC stub (shipped in tritonclient) rather than through
`tritonclient.grpc.aio.InferenceServerClient.infer`, whose per-call wrapping (InferInput, InferResult, header
handling) is pure Python on the hot path; the wire request is the same.

Micro-batching: vectors for the same model that arrive while the event loop is busy are sent as one
ModelInfer with one row each (the model's config allows batches up to `max_batch_size`). Nothing waits for
company: a vector joins whatever is queued in the same loop iteration, and is sent at the next one unless
`max_calls_in_flight` calls to that model are already out, in which case it goes with the next call. Under
light load every call carries one row; under heavy load one call carries many, which is what makes a Triton
call cheap per decision (one gRPC round trip and one Python-backend execute for the whole batch). Each
vector keeps its own deadline: a call's timeout is the earliest deadline of its rows, and a row whose
deadline passed while it waited fails alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from prometheus_client import Histogram
from tritonclient.grpc import service_pb2, service_pb2_grpc

from fraudshared.grpc_channel import RECONNECT_OPTIONS
from services.scoring.service_layer.ports import InferenceError

INPUT, OUTPUT = "features", "probability"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
BATCH_ROWS = Histogram(
    "fraud_scoring_triton_batch_rows", "Vectors sent in one Triton call", buckets=(1, 2, 4, 8, 16, 32, 64)
)


@dataclass
class _Row:
    values: Sequence[float]
    deadline: float  # time.monotonic()
    future: asyncio.Future[float]


@dataclass
class _Queue:
    rows: list[_Row] = field(default_factory=list)
    in_flight: int = 0
    scheduled: bool = False


class TritonRunner:
    """Scores feature vectors through Triton; concurrent vectors for one model share a call."""

    def __init__(self, url: str, max_batch_size: int = 64, max_calls_in_flight: int = 2) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.max_receive_message_length", -1)]
        options += RECONNECT_OPTIONS  # a restarted Triton is found again within a second
        self._channel = grpc.aio.insecure_channel(url, options=options)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._max_batch = max_batch_size
        self._max_calls = max_calls_in_flight
        # Keyed by (model, vector length): a malformed vector never shares a call with good ones.
        self._queues: dict[tuple[str, int], _Queue] = {}
        self._calls: set[asyncio.Task[None]] = set()

    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        loop = asyncio.get_running_loop()
        key = (triton_model_name, len(values))
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        row = _Row(values, time.monotonic() + timeout, loop.create_future())
        queue.rows.append(row)
        if not queue.scheduled:
            queue.scheduled = True
            loop.call_soon(self._send, key)
        return await row.future

    def _send(self, key: tuple[str, int]) -> None:
        """Start calls for what is queued, while the model has call slots free."""
        queue = self._queues[key]
        queue.scheduled = False
        now = time.monotonic()
        while queue.rows and queue.in_flight < self._max_calls:
            batch, queue.rows = queue.rows[: self._max_batch], queue.rows[self._max_batch :]
            live = []
            for row in batch:
                if row.future.done():  # the caller gave up (cancelled) while the row waited
                    continue
                if row.deadline <= now:
                    row.future.set_exception(InferenceError("no time left in the caller's budget"))
                    continue
                live.append(row)
            if not live:
                continue
            queue.in_flight += 1
            task = asyncio.ensure_future(self._call(key, live))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        self._drop_if_idle(key, queue)

    def _drop_if_idle(self, key: tuple[str, int], queue: _Queue) -> None:
        """Forget an idle queue, so keys never pile up (a retired model, a malformed vector's length)."""
        if not queue.rows and not queue.in_flight and not queue.scheduled:
            del self._queues[key]

    async def _call(self, key: tuple[str, int], rows: list[_Row]) -> None:
        name = key[0]
        try:
            timeout = min(row.deadline for row in rows) - time.monotonic()
            scores = await self._infer(name, np.asarray([row.values for row in rows], dtype=np.float32), timeout)
        except (Exception, asyncio.CancelledError) as exc:  # every waiting caller hears of it; none hangs
            error = exc if isinstance(exc, InferenceError) else InferenceError(f"{name}: {exc!r}")
            for row in rows:
                if not row.future.done():
                    row.future.set_exception(InferenceError(str(error)))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for row, score in zip(rows, scores.tolist(), strict=True):
                if not row.future.done():
                    row.future.set_result(score)
        finally:
            queue = self._queues[key]
            queue.in_flight -= 1
            if queue.rows and not queue.scheduled:
                queue.scheduled = True
                asyncio.get_running_loop().call_soon(self._send, key)
            self._drop_if_idle(key, queue)

    async def _infer(self, name: str, matrix: np.ndarray, timeout: float) -> np.ndarray:
        """One ModelInfer of `matrix` (rows x features); one probability per row, or InferenceError."""
        BATCH_ROWS.observe(len(matrix))
        if timeout <= 0:
            raise InferenceError("no time left in the caller's budget")
        request = service_pb2.ModelInferRequest(model_name=name)
        tensor = request.inputs.add(name=INPUT, datatype="FP32")
        tensor.shape.extend(matrix.shape)
        request.outputs.add(name=OUTPUT)
        request.raw_input_contents.append(matrix.tobytes())
        try:
            response = await self._stub.ModelInfer(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise InferenceError(f"{name}: [{exc.code().name}] {exc.details()}") from exc
        outputs = {o.name: i for i, o in enumerate(response.outputs)}
        index = outputs.get(OUTPUT)
        if index is None or index >= len(response.raw_output_contents):
            raise InferenceError(f"{name}: no {OUTPUT} output in the response")
        if response.outputs[index].datatype != "FP32":
            raise InferenceError(f"{name}: {OUTPUT} is {response.outputs[index].datatype}, not FP32")
        output = np.frombuffer(response.raw_output_contents[index], dtype=np.float32)
        if output.size != len(matrix):
            raise InferenceError(f"{name}: expected {len(matrix)} probabilities, got shape {output.shape}")
        return output

    async def live(self, timeout: float) -> bool:
        """Triton's ServerLive: False when it does not answer within `timeout` (down, restarting, hung)."""
        try:
            response = await self._stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(response.live)

    async def close(self) -> None:
        for task in list(self._calls):
            task.cancel()
        await self._channel.close()
