"""Event log: the envelope, stream definitions, the JetStream event store and upcasters (docs/events.md)."""

from fraudshared.events.envelope import (
    CONTENT_TYPE_PROTOBUF,
    Envelope,
    EnvelopeError,
    event_id,
    from_nats,
    new_envelope,
    to_nats,
)
from fraudshared.events.store import AppendRequest, AppendResult, ConcurrencyError, EventStore, StoredEvent
from fraudshared.events.streams import (
    StreamConfigConflict,
    StreamSpec,
    default_specs,
    ensure_streams,
)
from fraudshared.events.upcasting import Upcaster, UpcasterRegistry, UpcastError

__all__ = [
    "CONTENT_TYPE_PROTOBUF",
    "AppendRequest",
    "AppendResult",
    "ConcurrencyError",
    "Envelope",
    "EnvelopeError",
    "EventStore",
    "StoredEvent",
    "StreamConfigConflict",
    "StreamSpec",
    "UpcastError",
    "Upcaster",
    "UpcasterRegistry",
    "default_specs",
    "ensure_streams",
    "event_id",
    "from_nats",
    "new_envelope",
    "to_nats",
]
