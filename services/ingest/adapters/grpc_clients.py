"""gRPC clients for the features and scoring services (the hot path's two internal hops)."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from services.ingest.domain.errors import DependencyUnavailable


def channel(address: str) -> grpc.aio.Channel:
    """An insecure loopback channel with client tracing (mTLS arrives with the security work)."""
    return grpc.aio.insecure_channel(address, interceptors=aio_client_interceptors())


class GrpcFeaturesClient:
    def __init__(self, ch: grpc.aio.Channel) -> None:
        self._stub = features_grpc.FeatureServiceStub(ch)

    async def compute(
        self, request: features.ComputeFeaturesRequest, timeout: float
    ) -> features.ComputeFeaturesResponse:
        try:
            response: features.ComputeFeaturesResponse = await self._stub.ComputeFeatures(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise DependencyUnavailable(f"features: {exc.code().name}: {exc.details()}") from exc
        return response


class GrpcScoringClient:
    def __init__(self, ch: grpc.aio.Channel) -> None:
        self._stub = scoring_grpc.ScoringServiceStub(ch)

    async def score(self, request: scoring.ScoreFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        try:
            response: scoring.ScoreFeaturesResponse = await self._stub.ScoreFeatures(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise DependencyUnavailable(f"scoring: {exc.code().name}: {exc.details()}") from exc
        return response
