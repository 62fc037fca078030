"""The hot path's chain: a transaction's features, then the decision on its vector.

Shared by the two services that build the second request: features (forwarding to scoring over NATS) and
ingest (calling both over gRPC, FRAUD_INTERNAL_TRANSPORT=grpc).
"""

from __future__ import annotations

from fraud.features.v1 import feature_service_pb2 as features
from fraud.scoring.v1 import scoring_service_pb2 as scoring


def score_request(
    request: features.ComputeFeaturesRequest, vector: features.ComputeFeaturesResponse
) -> scoring.ScoreFeaturesRequest:
    """The ScoreFeatures request for the transaction of `request`, on its point-in-time `vector`."""
    return scoring.ScoreFeaturesRequest(
        transaction_id=request.transaction_id,
        card_token=request.card_token,
        subject_id=request.subject_id,
        feature_set_version=vector.feature_set_version,
        values=vector.values,
        event_time=request.event_time,
    )
