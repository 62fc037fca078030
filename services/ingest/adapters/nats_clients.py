"""The hot path over NATS request-reply (the default internal transport; see fraudshared/rpc.py)."""

from __future__ import annotations

from fraud.features.v1 import feature_service_pb2 as features
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared import subjects
from fraudshared.rpc import RpcClient, RpcError
from services.ingest.adapters.downstream import downstream_failure


class NatsDecisionPath:
    """One request to the card's features owner, which forwards the vector to scoring; scoring answers us."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def decide(self, request: features.ComputeFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        subject = subjects.features_decide(subjects.card_key(request))
        try:
            return await self._rpc.call(subject, request, scoring.ScoreFeaturesResponse, timeout)
        except RpcError as exc:  # the service that failed is named in the reply; a timeout names neither
            raise downstream_failure(exc.service or "features/scoring", exc.code, exc.details) from exc
