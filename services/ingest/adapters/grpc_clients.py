"""gRPC clients for the features and scoring services (the hot path's two internal hops)."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from services.ingest.adapters.downstream import downstream_failure


def channel(address: str) -> grpc.aio.Channel:
    """An insecure loopback channel with client tracing (mTLS arrives with the security work)."""
    return grpc.aio.insecure_channel(address, interceptors=aio_client_interceptors())


def _translate(exc: grpc.aio.AioRpcError, what: str) -> Exception:
    return downstream_failure(what, exc.code(), exc.details() or "")


class GrpcFeaturesClient:
    def __init__(self, ch: grpc.aio.Channel) -> None:
        self._stub = features_grpc.FeatureServiceStub(ch)

    async def compute(
        self, request: features.ComputeFeaturesRequest, timeout: float
    ) -> features.ComputeFeaturesResponse:
        try:
            response: features.ComputeFeaturesResponse = await self._stub.ComputeFeatures(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, "features") from exc
        return response


class GrpcScoringClient:
    def __init__(self, ch: grpc.aio.Channel) -> None:
        self._stub = scoring_grpc.ScoringServiceStub(ch)

    async def score(self, request: scoring.ScoreFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        try:
            response: scoring.ScoreFeaturesResponse = await self._stub.ScoreFeatures(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, "scoring") from exc
        return response
