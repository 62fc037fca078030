"""The bare baseline: one process doing grpc.aio unary echo + JetStream publish with ack + onnxruntime.

Its closed-loop throughput on this machine is the yardstick: the platform's max throughput is reported as
a ratio to it, which holds on a noisy 2-core machine where absolute numbers drift.

`triton_model` swaps onnxruntime for the same model in Triton (the platform's first rung), as a second,
informative reference: what the bare loop reaches once inference is a Triton call, before any of the
platform's own hops.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
import nats
import numpy as np

from bench.stats import RunStats
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudml.onnx_export import onnx_session
from fraudshared.events.streams import StreamSpec, ensure_streams
from fraudshared.service import run_event_loop
from services.scoring.adapters.triton_runner import TritonRunner

METHOD = "/bench.Echo/Score"


async def run(
    nats_url: str, onnx_bytes: bytes, n_features: int, requests: list[ingest.ScoreTransactionRequest],
    concurrency: int, seconds: float, triton: tuple[str, str] | None = None,
) -> RunStats:  # fmt: skip
    session = onnx_session(onnx_bytes)
    input_name = session.get_inputs()[0].name
    runner = TritonRunner(triton[0]) if triton else None
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, [StreamSpec("BENCH_BASELINE", ("bench.baseline.>",), "baseline publishes")])
    vector = np.zeros((1, n_features), dtype=np.float32)
    sequence = iter(range(10**12))

    async def score(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        message = ingest.ScoreTransactionRequest.FromString(request)
        vector[0, 0] = message.amount.amount_minor / 100
        if runner is not None and triton is not None:
            probability = await runner.score(triton[1], vector[0].tolist(), timeout=5.0)
        else:
            probability = float(session.run(None, {input_name: vector})[0][0, 0])
        msg_id = f"{message.transaction_id}-{next(sequence)}"  # unique: a dedupe hit would skip the write
        await js.publish(f"bench.baseline.{next(sequence) % 8}", request, headers={"Nats-Msg-Id": msg_id})
        return ingest.ScoreTransactionResponse(
            transaction_id=message.transaction_id, score=probability
        ).SerializeToString()

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(score)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Score": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD)
            payloads = [r.SerializeToString() for r in requests]
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    try:
                        await call(payloads[int(t0 * 1e6) % len(payloads)], timeout=5)
                    except grpc.aio.AioRpcError as exc:
                        errors[exc.code().name] += 1
                    else:
                        latencies.append((time.perf_counter() - t0) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
    finally:
        await server.stop(0)
        await nc.drain()
        if runner is not None:
            await runner.close()
    name = f"baseline{' with Triton' if triton else ''} closed-loop c={concurrency}"
    return RunStats.build(name, latencies, elapsed, errors, Counter())


def main_sync(
    nats_url: str,
    model: Path,
    n_features: int,
    requests: list[ingest.ScoreTransactionRequest],
    triton: tuple[str, str] | None = None,
    *,
    concurrency: int = 16,
    seconds: float = 10.0,
) -> RunStats:
    """One baseline run, `concurrency` requests in flight; `triton` = (gRPC URL, Triton model name) scores
    through Triton instead."""
    # Same event loop as the services (FRAUD_EVENT_LOOP): the ratio compares like with like.
    return run_event_loop(
        run(nats_url, model.read_bytes(), n_features, requests, concurrency=concurrency, seconds=seconds, triton=triton)
    )
