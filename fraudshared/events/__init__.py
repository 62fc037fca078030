"""Event log: the envelope, stream definitions, the JetStream event store and upcasters (docs/events.md)."""

from fraudshared.events.envelope import (
    CONTENT_TYPE_PROTOBUF,
    Envelope,
    EnvelopeError,
    UnexpectedType,
    event_id,
    from_nats,
    new_envelope,
    to_nats,
)
from fraudshared.events.quarantine import QUARANTINE_STREAM, Quarantine
from fraudshared.events.store import (
    AppendRequest,
    AppendResult,
    ConcurrencyError,
    EventStore,
    OnUnreadable,
    StoredEvent,
    UnreadableEvent,
)
from fraudshared.events.streams import (
    StreamConfigConflict,
    StreamSpec,
    default_specs,
    ensure_streams,
)
from fraudshared.events.upcasting import Upcaster, UpcasterRegistry, UpcastError

__all__ = [
    "CONTENT_TYPE_PROTOBUF",
    "QUARANTINE_STREAM",
    "AppendRequest",
    "AppendResult",
    "ConcurrencyError",
    "Envelope",
    "EnvelopeError",
    "EventStore",
    "OnUnreadable",
    "Quarantine",
    "StoredEvent",
    "StreamConfigConflict",
    "StreamSpec",
    "UnexpectedType",
    "UnreadableEvent",
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
