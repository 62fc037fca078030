"""Per-caller rate limit on a real mTLS server built by build_server: one caller over its rate is answered
RESOURCE_EXHAUSTED with RetryInfo, another caller is not slowed, an unlisted method is not limited."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from fraud.access.v1 import access_events_pb2 as events
from fraud.ingest.v1 import ingest_service_pb2 as pb
from fraud.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from fraudshared.grpc_server import ServerSecurity, build_server
from fraudshared.identity import Grants
from fraudshared.rate_limit import RateLimit, limits_from_env, retry_after_of
from tests.fixtures.identity import DevPki, aio_channel

SCORE = "/fraud.ingest.v1.IngestService/ScoreTransaction"


class CannedIngest(pb_grpc.IngestServiceServicer):
    async def ScoreTransaction(
        self, request: pb.ScoreTransactionRequest, context: object
    ) -> pb.ScoreTransactionResponse:
        return pb.ScoreTransactionResponse(transaction_id=request.transaction_id)

    async def ReportLabel(self, request: pb.ReportLabelRequest, context: object) -> pb.ReportLabelResponse:
        return pb.ReportLabelResponse()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def address(dev_pki: DevPki) -> AsyncIterator[str]:
    grants = Grants()
    for name, role in (("dev-scorer", "scorer"), ("dev-scorer-2", "scorer"), ("dev-labeler", "labeler")):
        grants.apply(events.RoleGranted(principal=f"user:{name}", role=role, granted_by="user:root"))
    security = ServerSecurity(dev_pki.service_files("ingest"), grants, rate_limits={SCORE: RateLimit(0.5, 2)})
    spec = (pb_grpc.add_IngestServiceServicer_to_server, CannedIngest(), "fraud.ingest.v1.IngestService")
    server, port = await build_server("ingest", [spec], security=security)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def _request(n: int) -> pb.ScoreTransactionRequest:
    request = pb.ScoreTransactionRequest(transaction_id=f"rate-{n}", pan="4000001234567899", terminal_id="T1")
    request.amount.amount_minor = 100
    request.amount.currency = "EUR"
    request.event_time.GetCurrentTime()
    request.merchant_category_code = "5411"
    return request


@pytest.mark.asyncio(loop_scope="session")
async def test_a_caller_over_its_rate_gets_resource_exhausted_with_retry_info(address: str) -> None:
    async with aio_channel(address, "dev-scorer") as channel:
        stub = pb_grpc.IngestServiceStub(channel)
        for n in range(2):  # the burst
            await stub.ScoreTransaction(_request(n), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ScoreTransaction(_request(2), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "user:dev-scorer is over its rate limit for ScoreTransaction" in (refused.value.details() or "")
    retry_after = retry_after_of(refused.value)
    assert retry_after is not None and 0 < retry_after <= 2.0  # one token at 0.5/s
    # Another principal has its own bucket.
    async with aio_channel(address, "dev-scorer-2") as channel:
        response = await pb_grpc.IngestServiceStub(channel).ScoreTransaction(_request(3), timeout=5)
    assert response.transaction_id == "rate-3"


@pytest.mark.asyncio(loop_scope="session")
async def test_methods_without_a_limit_are_not_limited(address: str) -> None:
    async with aio_channel(address, "dev-labeler") as channel:
        stub = pb_grpc.IngestServiceStub(channel)
        for n in range(5):
            await stub.ReportLabel(_label(n), timeout=5)


def test_limits_come_from_the_environment() -> None:
    assert limits_from_env("ingest", "INGEST") == {SCORE: RateLimit(2000.0, 2000.0)}
    env = {"FRAUD_INGEST_RATE_PER_CALLER": "50", "FRAUD_INGEST_RATE_BURST": "10"}
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        assert limits_from_env("ingest", "INGEST") == {SCORE: RateLimit(50.0, 10.0)}
        os.environ["FRAUD_INGEST_RATE_PER_CALLER"] = "0"
        assert limits_from_env("ingest", "INGEST") == {}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert limits_from_env("scoring", "SCORING") == {}


def _label(n: int) -> pb.ReportLabelRequest:
    request = pb.ReportLabelRequest(transaction_id=f"rate-label-{n}", is_fraud=True)
    request.reported_at.GetCurrentTime()
    return request
