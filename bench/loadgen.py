"""Load generator, run as its own process: `python -m bench.loadgen --target H:P --mode open --rate 300 ...`.

It calls as a named credential, as any caller of the platform: `--as scorer --var-dir build/bench-var`
(the development credential `fraudctl up` issued), else FRAUD_CREDENTIAL or FRAUD_TOKEN_FILE
(fraudshared.identity.client.resolve_credential).

Open loop: request i is sent at t0 + i/rate whether or not earlier ones finished, and its latency is measured
from that scheduled time (no coordinated omission). Closed loop: C workers send back to back. Prints one
JSON RunStats on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc

from bench.stats import RunStats
from bench.workload import requests as make_requests
from fraud.common.v1 import decision_pb2 as common
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudshared.config import ConfigError
from fraudshared.identity.client import ClientCredential, resolve_credential, secure_aio_channel
from fraudshared.service import run_event_loop

MAX_IN_FLIGHT = 5000  # a bound on the generator itself, far above what the platform accepts


async def _one(stub: ingest_grpc.IngestServiceStub, request: ingest.ScoreTransactionRequest, t0: float,
               out: list[float], errors: Counter[str], decisions: Counter[str]) -> None:  # fmt: skip
    try:
        response = await stub.ScoreTransaction(request, timeout=5.0)
    except grpc.aio.AioRpcError as exc:
        errors[exc.code().name] += 1
        return
    out.append((time.perf_counter() - t0) * 1000)
    decisions[common.Decision.Name(response.decision).removeprefix("DECISION_")] += 1
    if response.degraded:
        decisions["degraded"] += 1


async def open_loop(
    target: str, credential: ClientCredential, rate: float, seconds: float, reqs: list[ingest.ScoreTransactionRequest]
) -> RunStats:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    count = min(len(reqs), int(rate * seconds))
    async with secure_aio_channel(target, credential) as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        await channel.channel_ready()
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i in range(count):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= MAX_IN_FLIGHT:
                errors["GENERATOR_SATURATED"] += 1
                continue
            task = asyncio.ensure_future(_one(stub, reqs[i], scheduled, latencies, errors, decisions))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return RunStats.build(f"platform open-loop {rate:.0f} tx/s", latencies, elapsed, errors, decisions, rate)


async def closed_loop(
    target: str,
    credential: ClientCredential,
    concurrency: int,
    seconds: float,
    reqs: list[ingest.ScoreTransactionRequest],
) -> RunStats:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    pending = iter(reqs)
    async with secure_aio_channel(target, credential) as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        await channel.channel_ready()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            for request in pending:
                if time.perf_counter() >= deadline:
                    return
                await _one(stub, request, time.perf_counter(), latencies, errors, decisions)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return RunStats.build(f"platform closed-loop c={concurrency}", latencies, elapsed, errors, decisions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=["open", "closed"], required=True)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--as", dest="as_name", help="a credential under <var-dir>/credentials/ (e.g. scorer)")
    parser.add_argument("--var-dir", type=Path, default=Path("var"))
    opts = parser.parse_args()
    try:
        credential = resolve_credential(opts.as_name, opts.var_dir)
    except ConfigError as exc:
        parser.error(str(exc))
    needed = int(opts.rate * opts.seconds) if opts.mode == "open" else int(3000 * opts.seconds)
    reqs = make_requests(needed, uuid.uuid4().hex[:8], opts.seed)
    if opts.mode == "open":
        stats = run_event_loop(open_loop(opts.target, credential, opts.rate, opts.seconds, reqs))
    else:
        stats = run_event_loop(closed_loop(opts.target, credential, opts.concurrency, opts.seconds, reqs))
    print(json.dumps(stats.to_dict()))


if __name__ == "__main__":
    main()
