"""Upcasters: old payloads stay readable as the current schema version.

Events are immutable, so a schema change never rewrites the log; readers upcast on the way in. An upcaster is
a small pure function from one version's payload bytes to the next version's (bytes, version). The registry
chains them: v1 -> v2 -> v3 ... until the current version of that event type.

Hashes (`Envelope.sha256`) are defined over the stored envelope, so audit code hashes before upcasting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from fraudshared.events.envelope import Envelope

Upcaster = Callable[[bytes], tuple[bytes, int]]


class UpcastError(ValueError):
    """An envelope cannot be brought to the current version of its type."""


class UpcasterRegistry:
    """Maps (event type, from version) to an upcaster and knows each type's current version.

    Example::

        registry = UpcasterRegistry(current={"fraud.tx.v1.TransactionReceived": 2})

        @registry.upcaster("fraud.tx.v1.TransactionReceived", from_version=1)
        def amount_to_minor_units(data: bytes) -> tuple[bytes, int]:
            ...
            return new_bytes, 2
    """

    def __init__(self, current: Mapping[str, int] | None = None) -> None:
        """Creates a registry.

        Args:
            current: Current schema version per event type. A type not listed is current at whatever
                version its chain of upcasters ends on.
        """
        self._current: dict[str, int] = dict(current or {})
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def set_current(self, event_type: str, version: int) -> None:
        """Declares the version readers of ``event_type`` expect."""
        self._current[event_type] = version

    def current_version(self, event_type: str) -> int | None:
        """The declared current version of ``event_type``, if any."""
        return self._current.get(event_type)

    def register(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Registers ``upcaster`` for payloads of ``event_type`` at ``from_version``.

        Raises:
            ValueError: If one is already registered for that (type, version).
        """
        key = (event_type, from_version)
        if key in self._upcasters:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        self._upcasters[key] = upcaster

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of `register`."""

        def decorate(upcaster: Upcaster) -> Upcaster:
            self.register(event_type, from_version, upcaster)
            return upcaster

        return decorate

    def upcast(self, envelope: Envelope) -> Envelope:
        """Applies the chain of upcasters from the envelope's version up to the current one.

        Returns the envelope itself when it is already current; otherwise a new envelope with the new
        payload and ``schema_version`` (every other attribute unchanged).

        Raises:
            UpcastError: If the envelope is newer than the current version (written by a newer producer), an
                upcaster does not move the version forward, or the chain stops short of the current version.
        """
        event_type, version, data = envelope.type, envelope.schema_version, envelope.data
        current = self._current.get(event_type)
        if current is not None and version > current:
            raise UpcastError(f"{event_type} v{version} is newer than this reader's v{current} ({envelope.id})")
        while (current is None or version < current) and (event_type, version) in self._upcasters:
            data, new_version = self._upcasters[(event_type, version)](data)
            if new_version <= version:
                raise UpcastError(f"upcaster for {event_type} v{version} returned v{new_version}: not forward")
            version = new_version
        if current is not None and version != current:
            raise UpcastError(f"no upcaster from {event_type} v{version} towards v{current} ({envelope.id})")
        if version == envelope.schema_version:
            return envelope
        return dataclasses.replace(envelope, data=data, schema_version=version)
