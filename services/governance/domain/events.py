"""Model lifecycle events: the protobuf contract types, their schema version, decoding and business ids.

The events are the `fraud.events.v1` messages themselves (they are pure data); this module says which types
belong to a model's subject, how to parse a stored payload and what business id each event has.
"""

from __future__ import annotations

from urllib.parse import quote

from google.protobuf.message import Message

from fraud.events.v1 import model_events_pb2 as pb
from services.governance.domain.commands import Role

ModelRegistered = pb.ModelRegistered
ModelValidated = pb.ModelValidated
ModelApproved = pb.ModelApproved
ModelDeployed = pb.ModelDeployed
ModelPromoted = pb.ModelPromoted
ModelRolledBack = pb.ModelRolledBack
ModelRetired = pb.ModelRetired
ReferenceProfile = pb.ReferenceProfile

# Payload schema version each event type is written with today.
SCHEMA_VERSION = 1
EVENT_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        ModelRegistered,
        ModelValidated,
        ModelApproved,
        ModelDeployed,
        ModelPromoted,
        ModelRolledBack,
        ModelRetired,
    )
}

ROLE_TO_PROTO = {
    Role.CHAMPION: pb.DEPLOYMENT_ROLE_CHAMPION,
    Role.CANARY: pb.DEPLOYMENT_ROLE_CANARY,
    Role.SHADOW: pb.DEPLOYMENT_ROLE_SHADOW,
}
ROLE_FROM_PROTO = {value: role for role, value in ROLE_TO_PROTO.items()}


class UnknownEventType(ValueError):
    """A stored event's type is not a model lifecycle event."""


def role_from_proto(value: int) -> Role:
    """The domain role of a `fraud.events.v1.DeploymentRole` value.

    Raises:
        ValueError: If the value is unspecified or unknown.
    """
    try:
        return ROLE_FROM_PROTO[value]
    except KeyError:
        raise ValueError(f"deployment role {value} is not champion, canary or shadow") from None


def decode(type_name: str, data: bytes) -> Message:
    """Parses a stored payload that is already at the current schema version (upcast by the event log).

    Args:
        type_name: Protobuf full name from the envelope's ``type``.
        data: Serialized payload.

    Returns:
        The event message.

    Raises:
        UnknownEventType: If ``type_name`` is not a model event.
    """
    message_type = EVENT_TYPES.get(type_name)
    if message_type is None:
        raise UnknownEventType(f"{type_name!r} is not a model lifecycle event")
    message = message_type()
    message.ParseFromString(data)
    return message


def version_of(event: Message) -> str:
    """The version an event is about (the restored one for a rollback)."""
    if isinstance(event, ModelRolledBack):
        return str(event.to_version)
    return str(getattr(event, "version", ""))


def business_id(event: Message) -> str:
    """The business id behind an event's id (and its NATS dedupe id); printable ASCII, no spaces."""
    if isinstance(event, ModelRolledBack):
        return f"{event.model_name}@{event.to_version}/rolled-back/{event.rolled_back_at.ToJsonString()}"
    name, version = getattr(event, "model_name"), version_of(event)  # noqa: B009 - every model event has one
    if isinstance(event, ModelValidated):
        return f"{name}@{version}/validated"
    if isinstance(event, ModelApproved):
        return f"{name}@{version}/approved-by/{_ascii(event.approver)}"
    if isinstance(event, ModelDeployed):
        role = role_from_proto(event.role).value
        return f"{name}@{version}/deployed/{role}/{event.deployed_at.ToJsonString()}"
    if isinstance(event, ModelPromoted):
        return f"{name}@{version}/promoted/{event.promoted_at.ToJsonString()}"
    if isinstance(event, ModelRetired):
        return f"{name}@{version}/retired/{event.retired_at.ToJsonString()}"
    return f"{name}@{version}"


def _ascii(text: str) -> str:
    return quote(text, safe="@.-_")
