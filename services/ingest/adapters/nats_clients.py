"""Features and scoring over NATS request-reply (the default internal transport; see fraudshared/rpc.py)."""

from __future__ import annotations

from fraud.features.v1 import feature_service_pb2 as features
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared import subjects
from fraudshared.rpc import RpcClient, RpcError
from services.ingest.adapters.downstream import downstream_failure


def _translate(exc: RpcError, what: str) -> Exception:
    return downstream_failure(what, exc.code, exc.details)


class NatsFeaturesClient:
    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def compute(
        self, request: features.ComputeFeaturesRequest, timeout: float
    ) -> features.ComputeFeaturesResponse:
        try:
            return await self._rpc.call(
                subjects.features_rpc(subjects.card_key(request)), request, features.ComputeFeaturesResponse, timeout
            )
        except RpcError as exc:
            raise _translate(exc, "features") from exc


class NatsScoringClient:
    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def score(self, request: scoring.ScoreFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        try:
            return await self._rpc.call(subjects.SCORING_RPC, request, scoring.ScoreFeaturesResponse, timeout)
        except RpcError as exc:
            raise _translate(exc, "scoring") from exc
