"""ScoringService over gRPC."""

from __future__ import annotations

import time

import grpc

from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from services.scoring.service_layer.handlers import ScoringDeps, score_features


class ScoringServicer(scoring_grpc.ScoringServiceServicer):
    def __init__(self, deps: ScoringDeps) -> None:
        self._deps = deps

    async def ScoreFeatures(
        self, request: scoring.ScoreFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> scoring.ScoreFeaturesResponse:
        left = context.time_remaining()
        return await score_features(request, self._deps, None if left is None else time.time() + left)
