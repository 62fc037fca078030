"""Ports of the features service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared.features.recorded import Recorded


class FeatureLog(Protocol):
    """The FEATURES stream: the features service's own events, folded to rebuild state."""

    async def append_computed(
        self, event: events.FeatureVectorComputed
    ) -> tuple[events.FeatureVectorComputed | None, int]:
        """Append; (None, seq) when appended now, else (the event recorded for that transaction, its seq)."""
        ...

    async def append_label(self, event: events.LabelApplied) -> tuple[events.LabelApplied | None, int]:
        """Append; (None, seq) when appended now, else (the one recorded for its LABELS sequence, its seq)."""
        ...

    def replay(self, from_seq: int = 1) -> AsyncIterator[tuple[int, Recorded]]:
        """Recorded events of this instance's partitions from `from_seq`, in stream order."""
        ...


class SnapshotStore(Protocol):
    """Where a features instance keeps its latest state snapshot."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, snapshot: dict[str, Any]) -> None: ...
