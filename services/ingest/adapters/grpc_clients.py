"""gRPC clients for the features and scoring services (the hot path's two internal hops)."""

from __future__ import annotations

import time

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from fraudshared.decision_chain import score_request
from fraudshared.grpc_channel import RECONNECT_OPTIONS
from fraudshared.identity.client import ClientCredential, secure_aio_channel
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.tls import service_credential_files
from services.ingest.adapters.downstream import downstream_failure
from services.ingest.service_layer.ports import FeaturesClient, ScoringClient


def channel(address: str, files: CredentialFiles | None = None) -> grpc.aio.Channel:
    """An mTLS channel with client tracing, as service:ingest (`files`, default: ingest's own from the env).

    Raises:
        fraudshared.config.ConfigError: If ingest's certificate is not configured (names the variable).
    """
    files = files or service_credential_files("ingest")
    return secure_aio_channel(
        address,
        ClientCredential(ca=files.ca, files=files),
        options=RECONNECT_OPTIONS,
        interceptors=aio_client_interceptors(),
    )


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


class SequentialDecisionPath:
    """Features, then scoring: two calls, each within what is left of the caller's budget."""

    def __init__(self, features_client: FeaturesClient, scoring_client: ScoringClient) -> None:
        self._features = features_client
        self._scoring = scoring_client

    async def decide(self, request: features.ComputeFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        deadline = time.monotonic() + timeout
        vector = await self._features.compute(request, timeout)
        return await self._scoring.score(score_request(request, vector), deadline - time.monotonic())
