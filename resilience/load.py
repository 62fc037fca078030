"""Open-loop load through the retrying client, the shape of `bench.loadgen.open_loop`.

Request i is due at start + i/rate whether or not earlier ones were answered, and its latency counts from
that time (no coordinated omission), so a stalled platform shows up as latency and retries, not as a
politely slower client. It runs in the harness's own event loop, next to the fault it measures, so the kill
and the answers are read off one clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc

from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl.procfile import Plan
from fraudshared.grpc_channel import RECONNECT_OPTIONS
from fraudshared.identity.client import resolve_credential, secure_aio_channel
from resilience.client import Outcome, RetryPolicy, ScoreStub, score_with_retry

MAX_IN_FLIGHT = 6000  # above 120 tx/s x a 30 s give-up: the generator never sheds at the rates it is meant for
SATURATED = "GENERATOR_SATURATED"
CLIENT_ERROR = "CLIENT_ERROR"

# A channel that reconnects soon after its server comes back (the services' own reconnect backoff to a peer):
# gRPC's default backoff grows to 120 s, which would measure the client's patience, not the platform's
# recovery. Loopback only, never through a proxy.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0), *RECONNECT_OPTIONS]


def channel(plan: Plan) -> grpc.aio.Channel:
    """An mTLS channel to the plan's ingest as user:dev-scorer, with the fast reconnect above.

    The credential is the one `fraudctl up` issued under ``<var>/credentials/scorer``, as any caller's.

    Raises:
        fraudshared.config.ConfigError: If `fraudctl up` issued no scorer credential there.
    """
    credential = resolve_credential("scorer", plan.var_dir)
    return secure_aio_channel(plan.address("ingest"), credential, options=CHANNEL_OPTIONS)


async def open_loop(
    stub: ScoreStub,
    requests: Sequence[ingest.ScoreTransactionRequest],
    rate: float,
    start: float,
    policy: RetryPolicy,
) -> list[Outcome]:
    """Sends every request at its due time from ``start`` (perf_counter) and waits until each has an outcome.

    Returns:
        One outcome per request, in send order.
    """
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[Outcome]] = set()
    for i, request in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_IN_FLIGHT:
            outcomes.append(Outcome(request.transaction_id, due, final=SATURATED))
            continue
        task = asyncio.ensure_future(_one(stub, request, due, policy, outcomes))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*tasks)
    return sorted(outcomes, key=lambda o: o.scheduled)


async def _one(
    stub: ScoreStub, request: ingest.ScoreTransactionRequest, due: float, policy: RetryPolicy, out: list[Outcome]
) -> Outcome:
    try:
        outcome = await score_with_retry(stub, request, due, policy)
    except Exception as exc:  # a fault of the harness itself must show in the report, not vanish in a callback
        outcome = Outcome(request.transaction_id, due, final=f"{CLIENT_ERROR}:{type(exc).__name__}")
    out.append(outcome)
    return outcome


def stub(ch: grpc.aio.Channel) -> ScoreStub:
    """The ingest stub on ``ch``."""
    return ingest_grpc.IngestServiceStub(ch)
