"""NATS request-reply with forwarding (fraudshared.rpc.Forward) against a real nats-server.

A "features" server forwards its answer, as a ScoreFeatures request, to a "scoring" server, which answers
the caller directly: the hot path's chain, with stand-in handlers.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from nats.aio.client import Client

from fraud.features.v1 import feature_service_pb2 as features
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared.decision_chain import score_request
from fraudshared.rpc import ERROR, STATUS, Forward, RpcClient, RpcError, RpcServer

pytestmark = pytest.mark.integration


class Overloaded(Exception):
    pass


def _request(tx_id: str = "tx-1") -> features.ComputeFeaturesRequest:
    request = features.ComputeFeaturesRequest(transaction_id=tx_id, subject_id="s1", terminal_id="T1")
    request.amount.amount_minor, request.amount.currency = 1250, "EUR"
    request.event_time.FromSeconds(1_790_000_000)
    return request


class Chain:
    """Two servers on fresh subjects; `compute`/`decide` are the features subjects, `score` the scoring one."""

    def __init__(self, max_in_flight: int = 16) -> None:
        prefix = f"test.rpc.{uuid.uuid4().hex[:10]}"
        self.compute, self.decide, self.score = f"{prefix}.compute", f"{prefix}.decide", f"{prefix}.score"
        self.scored: list[tuple[scoring.ScoreFeaturesRequest, float | None]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.scoring_fails = False
        self.features = RpcServer(
            self.compute, features.ComputeFeaturesRequest, self._features, max_in_flight,
            service="features", forward=Forward(self.score, score_request),
        )  # fmt: skip
        self.scoring = RpcServer(
            self.score, scoring.ScoreFeaturesRequest, self._scoring, 16, service="scoring",
            error_status=lambda exc: grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, Overloaded) else None,
        )  # fmt: skip

    async def _features(
        self, request: features.ComputeFeaturesRequest, deadline: float | None
    ) -> features.ComputeFeaturesResponse:
        await self.release.wait()
        amount = request.amount.amount_minor / 100
        return features.ComputeFeaturesResponse(feature_set_version="card-v2", values=[amount, 2 * amount])

    async def _scoring(
        self, request: scoring.ScoreFeaturesRequest, deadline: float | None
    ) -> scoring.ScoreFeaturesResponse:
        if self.scoring_fails:
            raise Overloaded("scoring is busy")
        self.scored.append((request, deadline))
        return scoring.ScoreFeaturesResponse(score=sum(request.values) / 100)

    async def serve(self, nc: Client, with_scoring: bool = True) -> None:
        await nc.subscribe(self.compute, queue="f", cb=self.features.on_message)
        await nc.subscribe(self.decide, queue="f", cb=self.features.on_message_forwarded)
        if with_scoring:
            await self.scoring.subscribe(nc, queue="s")
        await nc.flush()


async def test_forwarded_answer_comes_from_the_next_service_with_the_callers_deadline(nats_client: Client) -> None:
    chain = Chain()
    await chain.serve(nats_client)
    rpc = RpcClient(nats_client)
    before = time.time()
    answer = await rpc.call(chain.decide, _request(), scoring.ScoreFeaturesResponse, 2.0)
    assert answer.score == pytest.approx((12.5 + 25.0) / 100)
    [(forwarded, deadline)] = chain.scored
    assert forwarded.transaction_id == "tx-1" and forwarded.subject_id == "s1"
    assert forwarded.feature_set_version == "card-v2" and list(forwarded.values) == [12.5, 25.0]
    assert forwarded.event_time.seconds == 1_790_000_000
    assert deadline is not None and before + 1.9 < deadline <= time.time() + 2.0  # the caller's, not a new one
    # The plain subject of the same server still answers with its own response, and scores nothing.
    vector = await rpc.call(chain.compute, _request("tx-2"), features.ComputeFeaturesResponse, 2.0)
    assert list(vector.values) == [12.5, 25.0] and len(chain.scored) == 1


async def test_errors_name_the_service_that_failed(nats_client: Client) -> None:
    chain = Chain()
    await chain.serve(nats_client)
    rpc = RpcClient(nats_client)
    with pytest.raises(RpcError) as invalid:  # rejected by the first service: nothing is forwarded
        await rpc.call(chain.decide, features.ComputeFeaturesRequest(), scoring.ScoreFeaturesResponse, 2.0)
    assert (invalid.value.code, invalid.value.service) == (grpc.StatusCode.INVALID_ARGUMENT, "features")
    assert "transaction_id" in invalid.value.details and chain.scored == []
    chain.scoring_fails = True
    with pytest.raises(RpcError) as busy:  # failed in the second: its error reaches the caller directly
        await rpc.call(chain.decide, _request(), scoring.ScoreFeaturesResponse, 2.0)
    assert (busy.value.code, busy.value.service) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "scoring")


async def test_no_next_service_is_unavailable_at_once(nats_client: Client) -> None:
    chain = Chain()
    await chain.serve(nats_client, with_scoring=False)
    started = time.monotonic()
    with pytest.raises(RpcError) as missing:
        await RpcClient(nats_client).call(chain.decide, _request(), scoring.ScoreFeaturesResponse, 5.0)
    assert missing.value.code == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 2.0  # the server's no-responders status, not the caller's timeout


async def test_plain_and_forwarded_requests_share_one_in_flight_bound(nats_client: Client) -> None:
    chain = Chain(max_in_flight=1)
    await chain.serve(nats_client)
    rpc = RpcClient(nats_client)
    chain.release.clear()
    held = asyncio.ensure_future(rpc.call(chain.decide, _request(), scoring.ScoreFeaturesResponse, 5.0))
    for _ in range(100):
        if chain.features._in_flight:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(RpcError) as shed:
        await rpc.call(chain.compute, _request("tx-2"), features.ComputeFeaturesResponse, 2.0)
    assert (shed.value.code, shed.value.service) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "features")
    chain.release.set()
    assert (await held).score == pytest.approx(0.375)


async def test_hostile_bodies_and_crashes_answer_clear_codes_without_python_text(nats_client: Client) -> None:
    chain = Chain()
    await chain.serve(nats_client)
    garbage = await nats_client.request(chain.compute, b"\xff\xff\xff\x0f", timeout=2.0)  # not a protobuf encoding
    assert garbage.headers is not None and garbage.headers[STATUS] == "INVALID_ARGUMENT"
    assert garbage.headers[ERROR] == "request is not a valid fraud.features.v1.ComputeFeaturesRequest"
    with pytest.raises(RpcError) as year1:  # a Timestamp outside its defined range: a field violation, not a crash
        request = _request()
        request.event_time.seconds = -62135596800 - 86400
        await RpcClient(nats_client).call(chain.compute, request, features.ComputeFeaturesResponse, 2.0)
    assert year1.value.code == grpc.StatusCode.INVALID_ARGUMENT and "event_time" in year1.value.details

    async def crash(
        request: features.ComputeFeaturesRequest, deadline: float | None
    ) -> features.ComputeFeaturesResponse:
        raise KeyError("secret internals")

    subject = f"test.rpc.{uuid.uuid4().hex[:10]}.crash"
    await RpcServer(subject, features.ComputeFeaturesRequest, crash, service="features").subscribe(nats_client, "c")
    with pytest.raises(RpcError) as crashed:
        await RpcClient(nats_client).call(subject, _request(), features.ComputeFeaturesResponse, 2.0)
    assert crashed.value.code == grpc.StatusCode.INTERNAL
    assert crashed.value.details.startswith("internal error; reference ") and "secret" not in crashed.value.details
