"""FeatureService over gRPC."""

from __future__ import annotations

import grpc

from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from services.features.service_layer.handlers import FeatureState, compute_features
from services.features.service_layer.ports import FeatureLog


class FeatureServicer(features_grpc.FeatureServiceServicer):
    def __init__(self, state: FeatureState, log: FeatureLog) -> None:
        self._state = state
        self._log = log

    async def ComputeFeatures(
        self, request: features.ComputeFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> features.ComputeFeaturesResponse:
        return await compute_features(request, self._state, self._log)
