"""The bare baseline: one process doing grpc.aio unary echo + JetStream publish with ack + onnxruntime.

With TLS too, as the platform: its gRPC server requires a client certificate (mutual TLS) from a development
CA of its own (`issue_credentials`, under its own directory), and the load sends with a client certificate
from it, so the ratio does not count TLS against the platform alone.

Its closed-loop throughput on this machine is the yardstick: the platform's max throughput is reported as
a ratio to it, which holds on a noisy 2-core machine where absolute numbers drift.

`triton_model` swaps onnxruntime for the same model in Triton (the platform's first rung), as a second,
informative reference: what the bare loop reaches once inference is a Triton call, before any of the
platform's own hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import grpc
import nats
import numpy as np

from bench.baseline_nats import hush_nats_tls_eof_note, tls_nats
from bench.stats import RunStats
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudml.onnx_export import onnx_session
from fraudshared.events.streams import StreamSpec, ensure_streams
from fraudshared.identity.pki import CredentialFiles, DevCA
from fraudshared.identity.principal import Principal
from fraudshared.identity.tls import channel_credentials, server_credentials, ssl_context
from fraudshared.service import run_event_loop
from services.scoring.adapters.triton_runner import TritonRunner

METHOD = "/bench.Echo/Score"
Call: TypeAlias = grpc.aio.UnaryUnaryMultiCallable
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class BaselineCredentials:
    """The baseline's server certificate and its load's client certificate, from one CA of its own."""

    server: CredentialFiles
    client: CredentialFiles


def issue_credentials(directory: Path) -> BaselineCredentials:
    """A development CA under `directory` (kept if there), a server and a client certificate from it."""
    ca = DevCA.load_or_create(directory / "ca")
    server = ca.issue(Principal("service", "bench-baseline"), directory / "server", server_names=LOOPBACK_NAMES)
    return BaselineCredentials(server, ca.issue(Principal("user", "bench-load"), directory / "client"))


@contextlib.contextmanager
def own_nats(directory: Path, credentials: BaselineCredentials) -> Iterator[str]:
    """The baseline's own JetStream behind TLS (`bench.baseline_nats`), serving `credentials.server`; its URL."""
    with tls_nats(directory, credentials.server) as url:
        yield url


def nats_tls(url: str, files: CredentialFiles) -> ssl.SSLContext | None:
    """The client TLS context for a tls:// NATS URL (presenting `files`' certificate), None for nats://."""
    return ssl_context(files) if url.startswith("tls://") else None


async def run(
    nats_url: str, onnx_bytes: bytes, n_features: int, requests: list[ingest.ScoreTransactionRequest],
    concurrency: int, seconds: float, credentials: BaselineCredentials, triton: tuple[str, str] | None = None,
    nats_files: CredentialFiles | None = None, rate: float | None = None,
) -> RunStats:  # fmt: skip
    session = onnx_session(onnx_bytes)
    input_name = session.get_inputs()[0].name
    runner = TritonRunner(triton[0]) if triton else None
    tls = nats_tls(nats_url, nats_files or credentials.client)
    hush_nats_tls_eof_note()
    nc = await nats.connect(nats_url, tls=tls, tls_hostname="localhost" if tls else None)
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
    port = server.add_secure_port("127.0.0.1:0", server_credentials(credentials.server))
    await server.start()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials(credentials.client)) as channel:
            call = channel.unary_unary(METHOD)
            payloads = [r.SerializeToString() for r in requests]
            if rate is None:
                elapsed = await _closed_loop(call, payloads, concurrency, seconds, latencies, errors)
            else:
                elapsed = await _open_loop(call, payloads, rate, seconds, latencies, errors)
    finally:
        await server.stop(0)
        await nc.drain()
        if runner is not None:
            await runner.close()
    load = f"closed-loop c={concurrency}" if rate is None else f"open-loop {rate:.0f} tx/s"
    name = f"baseline{' with Triton' if triton else ''} {load}"
    return RunStats.build(name, latencies, elapsed, errors, Counter(), rate)


async def _timed(call: Call, payload: bytes, t0: float, latencies: list[float], errors: Counter[str]) -> None:
    try:
        await call(payload, timeout=5)
    except grpc.aio.AioRpcError as exc:
        errors[exc.code().name] += 1
    else:
        latencies.append((time.perf_counter() - t0) * 1000)


async def _closed_loop(
    call: Call, payloads: list[bytes], concurrency: int, seconds: float, latencies: list[float], errors: Counter[str]
) -> float:
    """`concurrency` workers back to back for `seconds`; returns the seconds it took."""
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await _timed(call, payloads[int(t0 * 1e6) % len(payloads)], t0, latencies, errors)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _open_loop(
    call: Call, payloads: list[bytes], rate: float, seconds: float, latencies: list[float], errors: Counter[str]
) -> float:
    """Request i at start + i/rate whatever came back, latency from that time (as bench.loadgen's open loop)."""
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(_timed(call, payloads[i % len(payloads)], due, latencies, errors))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


def main_sync(
    nats_url: str,
    model: Path,
    n_features: int,
    requests: list[ingest.ScoreTransactionRequest],
    triton: tuple[str, str] | None = None,
    *,
    concurrency: int = 16,
    seconds: float = 10.0,
    credentials: BaselineCredentials | None = None,
    nats_files: CredentialFiles | None = None,
    rate: float | None = None,
) -> RunStats:
    """One baseline run: closed loop with `concurrency` requests in flight, or open loop at `rate` tx/s.

    Args:
        nats_url: JetStream to publish to (tls:// connects with `nats_files`, default the load's certificate).
        model: The ONNX file.
        n_features: Its input width.
        requests: What the load sends, round robin.
        triton: (gRPC URL, Triton model name) to score through Triton instead of in process.
        concurrency: Requests in flight.
        seconds: How long.
        credentials: TLS certificates (`issue_credentials`); default: a fresh CA in a temporary directory.
        nats_files: The client certificate for a tls:// NATS.
        rate: Open loop at this offered rate (tx/s) instead of the closed loop.
    """
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as scratch:
        credentials = credentials or issue_credentials(Path(scratch))
        # Same event loop as the services (FRAUD_EVENT_LOOP): the ratio compares like with like.
        return run_event_loop(
            run(
                nats_url,
                model.read_bytes(),
                n_features,
                requests,
                concurrency=concurrency,
                seconds=seconds,
                credentials=credentials,
                triton=triton,
                nats_files=nats_files,
                rate=rate,
            )
        )
