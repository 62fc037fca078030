"""Ports of the features service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from fraud.events.v1 import transaction_events_pb2 as events


class FeatureLog(Protocol):
    """The FEATURES stream: the features service's own events, folded to rebuild state."""

    async def append_computed(self, event: events.FeatureVectorComputed) -> events.FeatureVectorComputed | None:
        """Append; None when appended now, else the event already recorded for that transaction."""
        ...

    def replay(self) -> AsyncIterator[events.FeatureVectorComputed]:
        """Every recorded FeatureVectorComputed in stream order."""
        ...
