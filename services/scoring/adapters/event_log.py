"""PredictionMade appended once per transaction; model events folded from the MODELS stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared import subjects
from fraudshared.events.envelope import Envelope, UnexpectedType
from fraudshared.events.follow import Handler
from fraudshared.events.once import OnceLog
from services.scoring.domain.catalog import ModelCatalog

PREDICTIONS = "PREDICTIONS"
MODELS = "MODELS"
MODEL_EVENT_TYPES = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        model_events.ModelRegistered,
        model_events.ModelApproved,
        model_events.ModelDeployed,
        model_events.ModelPromoted,
        model_events.ModelRolledBack,
        model_events.ModelValidated,
        model_events.ModelRetired,
    )
}


class JetStreamPredictionLog:
    """Implements services.scoring.service_layer.ports.PredictionLog."""

    def __init__(self, once: OnceLog) -> None:
        self._once = once

    async def append_prediction(self, event: events.PredictionMade) -> events.PredictionMade | None:
        return await self._once.append_once(
            event,
            business_id=event.transaction_id,
            subject=subjects.prediction_made(subjects.card_key(event), event.transaction_id),
            stream=PREDICTIONS,
            time=event.event_time.ToDatetime(tzinfo=UTC),
        )

    async def append_shadow(self, event: events.ShadowScored) -> None:
        business_id = f"{event.transaction_id}:{event.model.name}-{event.model.version.replace('.', '-')}"
        await self._once.append_once(
            event,
            business_id=business_id,
            subject=subjects.shadow_scored(subjects.card_key(event), event.transaction_id, event.model.version),
            stream=PREDICTIONS,
            time=event.event_time.ToDatetime(tzinfo=UTC),
        )


def catalog_folder(catalog: ModelCatalog, on_change: Callable[[], None] = lambda: None) -> Handler:
    """A follow() handler that folds model events into `catalog`, then calls `on_change`.

    Any other type on MODELS raises `UnexpectedType`, so the follower quarantines it instead of passing over
    it in silence.
    """

    def handle(seq: int, envelope: Envelope) -> None:
        message_type = MODEL_EVENT_TYPES.get(envelope.type)
        if message_type is None:
            raise UnexpectedType(f"{envelope.type!r} is not a model lifecycle event")
        catalog.apply(envelope.payload(message_type))
        on_change()

    return handle
