"""Readiness against the real servers: NATS lost and back, scoring's champion unloaded from Triton and back.

Each test runs its own nats-server (what it appends must not reach other tests' streams); the scoring tests
share the session's tritonserver under a model name of their own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import nats
import numpy as np
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fraud.common.v1 import decision_pb2 as common
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from fraudshared.grpc_server import LIVENESS, ServicerSpec
from fraudshared.nats_server import NatsServer
from fraudshared.readiness import wait_until_serving
from fraudshared.service import ServiceContext, start_in_process
from services.governance.adapters.triton_repository import TritonModelControl
from tests.fixtures.identity import DevPki, aio_channel, credential, grant_dev_roles
from tests.integration.governance.governance_support import FEATURES, Artifacts, model_name, register_request

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
CHAMPION = 1  # DEPLOYMENT_ROLE_CHAMPION
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 << 20)]
PROBE = credential("dev-auditor")  # health needs no role, only a certificate from the platform's CA


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def env(own_nats: NatsServer, tmp_path: Path, dev_pki: DevPki) -> Iterator[dict[str, str]]:
    saved = dict(os.environ)
    probe = dev_pki.service_files("readiness-probe")  # the test's own service needs a server certificate too
    values = {
        "FRAUD_NATS_URL": own_nats.url,
        "FRAUD_VAR_DIR": str(tmp_path / "var"),
        "FRAUD_READINESS_EVERY_S": "0.1",
        "FRAUD_READINESS_PROBE_TLS_CERT_FILE": str(probe.cert),
        "FRAUD_READINESS_PROBE_TLS_KEY_FILE": str(probe.key),
    }
    os.environ.update(values)
    yield values
    os.environ.clear()
    os.environ.update(saved)


async def status(address: str, service: str = "") -> int:
    async with aio_channel(address, "dev-auditor") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return reply.status


async def until_not_serving(address: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while await status(address) != NOT_SERVING:
        assert time.monotonic() < deadline, f"{address} still SERVING after {seconds} s"
        await asyncio.sleep(0.1)


async def test_a_service_is_not_ready_until_its_flag_flips_nor_while_nats_is_gone(
    env: dict[str, str], own_nats: NatsServer
) -> None:
    flags = []

    async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
        flags.append(ctx.readiness.flag("state", "restoring"))
        return []

    service = await start_in_process("readiness-probe", bootstrap)
    try:
        assert await status(service.address, LIVENESS) == SERVING  # alive ...
        assert await status(service.address) == NOT_SERVING  # ... but not ready
        flags[0].ready()
        await wait_until_serving(service.address, timeout_s=30, credential=PROBE)
        own_nats.stop()  # what every service needs: a connection to NATS
        await until_not_serving(service.address)
        assert await status(service.address, LIVENESS) == SERVING
        own_nats.start()
        await wait_until_serving(service.address, timeout_s=30, credential=PROBE)  # the client reconnects by itself
    finally:
        await service.stop()


def small_model() -> Artifacts:
    lightgbm = pytest.importorskip("lightgbm")
    from fraudml.onnx_export import to_onnx

    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 1.0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    return Artifacts(to_onnx(model, len(FEATURES)), model.booster_.model_to_string().encode())


@pytest_asyncio.fixture
async def champion(env: dict[str, str], triton_server: object, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Governance with a champion deployed to the session's Triton; yields (its Triton name, governance address)."""
    from services.governance.bootstrap import bootstrap as governance

    os.environ.update(
        {
            "FRAUD_TRITON_GRPC_URL": triton_server.grpc_url,  # type: ignore[attr-defined]
            "FRAUD_TRITON_MODEL_REPO": str(triton_server.repo_dir),  # type: ignore[attr-defined]
            "FRAUD_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "FRAUD_GOVERNANCE_RECONCILE_EVERY_S": "3600",  # nothing reloads the model behind the test's back
        }
    )
    nc = await nats.connect(env["FRAUD_NATS_URL"])
    try:
        await grant_dev_roles(nc.jetstream())  # model-owner registers and deploys, two approvers approve
    finally:
        await nc.drain()
    service = await start_in_process("governance", governance, timeout=60.0, wait_ready=True)
    name = model_name()
    try:
        await deploy_champion(service.address, name, small_model())
        os.environ["FRAUD_GOVERNANCE_ADDR"] = service.address
        yield f"{name}-1-0-0", service.address
    finally:
        await service.stop()


async def deploy_champion(address: str, name: str, art: Artifacts) -> None:
    """Register as a model owner, approve as two approvers (four eyes), deploy as champion as the model owner."""
    from fraud.governance.v1 import governance_service_pb2 as gov
    from fraud.governance.v1 import governance_service_pb2_grpc as gov_grpc

    async with aio_channel(address, "dev-model-owner", options=CHANNEL_OPTIONS) as channel:
        owner = gov_grpc.GovernanceServiceStub(channel)
        await owner.RegisterModel(register_request(name, art, "1.0.0", registered_by=""))
        for approver in ("dev-approver", "dev-approver-2"):
            async with aio_channel(address, approver) as approving:
                approve = gov.ApproveModelRequest(model_name=name, version="1.0.0")
                await gov_grpc.GovernanceServiceStub(approving).ApproveModel(approve)
        await owner.DeployModel(gov.DeployModelRequest(model_name=name, version="1.0.0", role=CHAMPION))


async def test_scoring_is_not_serving_while_its_champion_is_not_in_triton_and_serving_once_it_answers(
    champion: tuple[str, str], triton_server: object
) -> None:
    from services.scoring.bootstrap import bootstrap as scoring

    triton_name, _ = champion
    control = TritonModelControl(triton_server.grpc_url)  # type: ignore[attr-defined]
    try:
        await asyncio.to_thread(control.unload, triton_name)
        with pytest.raises(TimeoutError, match="last: NOT_SERVING"):  # Triton is up, the champion is not in it
            await start_in_process("scoring", scoring, timeout=3.0, wait_ready=True)
        service = await start_in_process("scoring", scoring)
        try:
            assert await status(service.address) == NOT_SERVING
            assert await status(service.address, LIVENESS) == SERVING
            await asyncio.to_thread(control.load, triton_name)
            await wait_until_serving(service.address, timeout_s=30, credential=PROBE)
            response = await score(service.address)
            assert response.scoring_path == common.SCORING_PATH_TRITON and not response.degraded
            await asyncio.to_thread(control.unload, triton_name)  # lost while running: not ready again
            await until_not_serving(service.address)
            await asyncio.to_thread(control.load, triton_name)
            await wait_until_serving(service.address, timeout_s=30, credential=PROBE)
        finally:
            await service.stop()
    finally:
        control.close()


async def score(address: str) -> scoring.ScoreFeaturesResponse:
    request = scoring.ScoreFeaturesRequest(
        transaction_id=f"readiness-{time.monotonic_ns()}", card_token="ct_readiness", subject_id="s-readiness",
        feature_set_version="fs-1", values=[0.1, 2.0, 0.0],
    )  # fmt: skip
    request.event_time.GetCurrentTime()
    async with aio_channel(address, "service:ingest") as channel:  # scoring answers the platform's services only
        return await scoring_grpc.ScoringServiceStub(channel).ScoreFeatures(request, timeout=10)
