"""The recorded decisions: a transaction's PredictionMade, read from stream PREDICTIONS.

Scoring appends PredictionMade on ``fraud.predictions.made.<partition>.<transaction_id>``; the partition is a
hash of the card token, which governance does not know, so the lookup asks JetStream for the last message on
``fraud.predictions.made.*.<transaction_id>`` (one message per transaction: appends are deduplicated).
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared.events.envelope import from_nats

PREDICTIONS_STREAM = "PREDICTIONS"
_PREDICTION_TYPE = tx_events.PredictionMade.DESCRIPTOR.full_name


class JetStreamDecisionLog:
    """Implements `services.governance.service_layer.ports.DecisionLog`."""

    def __init__(self, js: JetStreamContext, *, stream: str = PREDICTIONS_STREAM) -> None:
        """Reads ``stream`` through ``js``."""
        self._js = js
        self._stream = stream

    async def prediction(self, transaction_id: str) -> tuple[tx_events.PredictionMade, int] | None:
        subject = f"fraud.predictions.made.*.{transaction_id}"
        try:
            message = await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            return None
        envelope = from_nats(message.headers or {}, message.data or b"")
        if envelope.type != _PREDICTION_TYPE:
            return None
        prediction = tx_events.PredictionMade()
        prediction.ParseFromString(envelope.data)
        return prediction, int(message.seq or 0)
