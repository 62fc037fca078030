"""Each decision type, each rung of the fallback ladder, readiness, self-healing and overload shedding, via gRPC.

This module runs its own nats-server, tritonserver and services (stopping Triton must not disturb other
tests). The breaker is set to open after 2 failures and probe again after 1 s, and ingest accepts at most
4 calls in flight, so shedding is easy to provoke.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nats
import pytest
import pytest_asyncio

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl.demo import MODEL_NAME, deploy
from fraudml.datagen import generate
from fraudml.train import train
from fraudshared.nats_server import NatsServer
from fraudshared.readiness import wait_until_serving
from fraudshared.service import start_in_process
from fraudshared.triton_server import TritonServer
from services.governance.adapters.triton_repository import TritonModelControl
from tests.e2e import dev_credentials
from tests.fixtures.identity import aio_channel, credential
from tests.fixtures.platform import Platform, running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
NOW = datetime.now(UTC).replace(microsecond=0)
PROBE = credential("dev-auditor")  # health needs no role, only a certificate from the platform's CA


@dataclass
class Stack:
    nats: NatsServer
    triton: TritonServer
    platform: Platform
    version: str
    env: dict[str, str]
    exits: contextlib.AsyncExitStack

    async def restart_platform(self) -> None:
        """Stop every service and Triton, start them again (Triton empty, as after `fraudctl down` and `up`)."""
        await self.exits.aclose()
        self.triton.stop()
        self.triton.start(same_ports=True)
        self.exits = contextlib.AsyncExitStack()
        self.platform = await self.exits.enter_async_context(running_platform(self.env))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, TritonServer, Path]]:
    root = tmp_path_factory.mktemp("ladder")
    with NatsServer(root / "nats") as nats_server, TritonServer(root / "models", root / "triton") as triton:
        yield nats_server, triton, root


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(servers: tuple[NatsServer, TritonServer, Path]) -> AsyncIterator[Stack]:
    nats_server, triton, root = servers
    env = {
        "FRAUD_NATS_URL": nats_server.url,
        "FRAUD_VAR_DIR": str(root / "var"),
        "FRAUD_TRITON_GRPC_URL": triton.grpc_url,
        "FRAUD_TRITON_MODEL_REPO": str(triton.model_repo),
        "FRAUD_SCORING_BREAKER_FAILURES": "2",
        "FRAUD_SCORING_BREAKER_RESET_S": "1",
        "FRAUD_SCORING_INFERENCE_TIMEOUT_S": "0.3",
        "FRAUD_INGEST_GRPC_MAX_IN_FLIGHT": "4",
        "FRAUD_GOVERNANCE_RECONCILE_EVERY_S": "0.5",
        "FRAUD_READINESS_EVERY_S": "0.2",
    }
    exits = contextlib.AsyncExitStack()
    try:
        platform = await exits.enter_async_context(running_platform(env))
        result = train(generate(n_customers=200, n_terminals=2000, n_days=30, seed=5), train_days=16)
        dev_credentials.install(platform.var_dir)  # deploy calls as model-owner, approver and approver-2
        version, _ = await deploy(platform.address("governance"), platform.var_dir, result)
        stack = Stack(nats_server, triton, platform, version, env, exits)
        await wait_for_path(stack, common.SCORING_PATH_TRITON)
        yield stack
    finally:
        await exits.aclose()
        with contextlib.suppress(NameError):  # a restart replaced the platform (and its exit stack)
            await stack.exits.aclose()


def request(
    tx_id: str, amount: int = 4200, pan: str = "4000000000000002", minutes: int = -30
) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest(
        transaction_id=tx_id, pan=pan, terminal_id="T-9", amount=money_pb2.Money(amount_minor=amount, currency="EUR")
    )
    r.event_time.FromDatetime(NOW + timedelta(minutes=minutes))
    return r


async def score(stack: Stack, r: ingest.ScoreTransactionRequest) -> ingest.ScoreTransactionResponse:
    async with aio_channel(stack.platform.address("ingest"), "dev-scorer") as channel:
        return await ingest_grpc.IngestServiceStub(channel).ScoreTransaction(r, timeout=10)


_probe = iter(range(10**6))


async def wait_for_path(stack: Stack, path: int, seconds: float = 20.0) -> ingest.ScoreTransactionResponse:
    deadline = time.monotonic() + seconds
    while True:
        response = await score(stack, request(f"probe-{next(_probe)}", minutes=-600))
        if response.scoring_path == path or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_all_three_decisions_with_reason_codes_from_the_model(stack: Stack) -> None:
    df = generate(n_customers=200, n_terminals=2000, n_days=30, seed=5).tail(400)
    seen: dict[int, ingest.ScoreTransactionResponse] = {}
    for row in df.itertuples():
        shifted = row.tx_time.to_pydatetime() - (df.tx_time.max().to_pydatetime() - NOW) - timedelta(hours=1)
        r = ingest.ScoreTransactionRequest(
            transaction_id=f"mix-{row.tx_id}", pan=row.card_pan, terminal_id=row.terminal_id,
            amount=money_pb2.Money(amount_minor=int(row.amount_minor), currency="EUR"),
        )  # fmt: skip
        r.event_time.FromDatetime(shifted)
        response = await score(stack, r)
        seen.setdefault(response.decision, response)
        if len(seen) == 3:
            break
    assert set(seen) == {common.DECISION_APPROVE, common.DECISION_REVIEW, common.DECISION_DECLINE}
    assert not seen[common.DECISION_APPROVE].reason_codes
    for decision in (common.DECISION_REVIEW, common.DECISION_DECLINE):
        codes = seen[decision].reason_codes
        assert codes[0].code.startswith("MODEL_SCORE_AT_")
        assert any(c.feature and c.contribution > 0 for c in codes[1:]), codes  # tree SHAP from the explainer


async def test_triton_down_falls_to_in_process_onnx_and_returns_when_triton_is_back(stack: Stack) -> None:
    stack.triton.stop()
    try:
        response = await wait_for_path(stack, common.SCORING_PATH_LOCAL_ONNX)
        assert response.scoring_path == common.SCORING_PATH_LOCAL_ONNX
        assert response.degraded and response.model.version == stack.version  # the champion, flagged: Triton failed
        # Triton is down and the in-process copy answers: scoring can do its job, so it stays ready.
        await wait_until_serving(stack.platform.address("scoring"), timeout_s=20, credential=PROBE)
    finally:
        stack.triton.start(same_ports=True)
    # A restarted Triton (explicit model control) starts empty: governance's reconciler loads the champion
    # again by itself, then the breaker's probe sends traffic back to Triton.
    response = await wait_for_path(stack, common.SCORING_PATH_TRITON)
    assert TritonModelControl(stack.triton.grpc_url).is_ready(f"{MODEL_NAME}-{stack.version.replace('.', '-')}")
    assert response.scoring_path == common.SCORING_PATH_TRITON and not response.degraded
    await wait_until_serving(stack.platform.address("scoring"), timeout_s=20, credential=PROBE)


async def test_after_a_restart_the_first_decision_is_the_champions_through_triton(stack: Stack) -> None:
    # As `fraudctl down` then `up`: every service restarts and Triton comes back empty. Waiting, as `up` does,
    # until every service reports SERVING means scoring has its champion answering in Triton again.
    await stack.restart_platform()
    for service in stack.platform.services.values():
        await wait_until_serving(service.address, timeout_s=60, credential=PROBE)
    response = await score(stack, request("first-after-restart", minutes=-20))
    assert response.scoring_path == common.SCORING_PATH_TRITON and not response.degraded
    assert response.model.version == stack.version and response.model.name == MODEL_NAME


async def test_without_an_in_process_copy_triton_down_means_safe_mode(stack: Stack) -> None:
    # A scoring instance started while governance is unreachable has no local copy of the model.
    from services.scoring.bootstrap import bootstrap as scoring

    saved = dict(os.environ)
    os.environ.update({**stack.env, "FRAUD_GOVERNANCE_ADDR": "127.0.0.1:9"})
    try:
        second = await start_in_process("scoring", scoring)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    first = stack.platform.services.pop("scoring")
    await first.stop()
    stack.platform.services["scoring"] = second
    stack.triton.stop()
    try:
        response = await wait_for_path(stack, common.SCORING_PATH_SAFE_MODE_RULES)
        assert response.scoring_path == common.SCORING_PATH_SAFE_MODE_RULES
        assert response.decision == common.DECISION_REVIEW and response.degraded
        assert response.reason_codes[0].code == "SAFE_MODE"
    finally:
        stack.triton.start(same_ports=True)


async def test_overload_is_shed_with_resource_exhausted_and_nothing_hangs(stack: Stack) -> None:
    nc = await nats.connect(stack.nats.url)
    before = (await nc.jetstream().stream_info("TRANSACTIONS")).state.messages
    started = time.monotonic()
    async with aio_channel(stack.platform.address("ingest"), "dev-scorer") as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        calls = [stub.ScoreTransaction(request(f"burst-{i}", minutes=-5), timeout=5) for i in range(64)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    elapsed = time.monotonic() - started
    shed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    answered = [r for r in results if isinstance(r, ingest.ScoreTransactionResponse)]
    assert shed and all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in shed)
    assert answered and len(shed) + len(answered) == 64 and elapsed < 5
    after = (await nc.jetstream().stream_info("TRANSACTIONS")).state.messages
    assert after - before == len(answered)  # shed calls appended nothing
    await nc.close()
