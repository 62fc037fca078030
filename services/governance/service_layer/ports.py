"""Ports the use cases depend on; adapters implement them, unit tests pass small in-memory fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.message import Message

from services.governance.domain.views import Lineage, VersionView

History = list[tuple[Message, int]]


class ModelEventLog(Protocol):
    """The model lifecycle events: one subject per model, one stream for all models."""

    async def load(self, model_name: str) -> History:
        """Every event on the model's subject with its stream sequence, in order.

        An event that could not be read is there as an ``EventQuarantined`` naming it (nothing to fold; its
        sequence still counts for the next append's expected one).
        """
        ...

    async def append(self, event: Message, *, expected_last_seq: int | None) -> int:
        """Appends ``event`` on its model's subject.

        Args:
            event: The event.
            expected_last_seq: The subject's last sequence the decision was made on; None appends without the
                check (a consequence of a decision already appended; its business id dedupes retries).

        Returns:
            The event's stream sequence.

        Raises:
            ConcurrentChange: If another event was appended to the subject meanwhile.
        """
        ...

    def read_all(self, after_seq: int) -> AsyncIterator[tuple[Message, int]]:
        """Every model event of the stream after ``after_seq``, in stream order (up to the current end).

        An event that could not be read is there as an ``EventQuarantined`` naming it, as in `load`.
        """
        ...

    async def last_seq(self) -> int:
        """The stream's last sequence (0 when empty)."""
        ...


class DecisionLog(Protocol):
    """The recorded decisions (stream PREDICTIONS)."""

    async def prediction(self, transaction_id: str) -> tuple[Any, int] | None:
        """The transaction's PredictionMade and its stream sequence, or None if none is recorded."""
        ...


class Registry(Protocol):
    """The registry projection (synchronous; the use cases call it from a worker thread)."""

    def position(self) -> int:
        """Last stream sequence applied."""
        ...

    def apply(self, event: Message, stream_seq: int) -> bool:
        """Applies one event unless ``stream_seq`` is at or below the position; False when skipped."""
        ...

    def rebuild(self, history: Iterable[tuple[Message, int]]) -> int:
        """Empties the projection and re-applies the stream."""
        ...

    def get(self, model_name: str, version: str) -> VersionView | None:
        """One version."""
        ...

    def lineage(self, model_name: str, version: str) -> Lineage | None:
        """One version with approvals, lifecycle history and reference profile."""
        ...

    def list_versions(self, model_name: str | None = None) -> list[VersionView]:
        """Versions, oldest first."""
        ...

    def serving(self) -> list[VersionView]:
        """Versions deployed now."""
        ...

    def champion_at(self, model_name: str, moment: datetime) -> VersionView | None:
        """The version that was champion at ``moment``, if any."""
        ...


class ArtifactStore(Protocol):
    """Content-addressed artifact bytes."""

    def put(self, data: bytes) -> str:
        """Stores ``data``; returns its sha256."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes, verified against ``sha256``.

        Raises:
            UnknownArtifact: If nothing is stored under ``sha256``.
            ArtifactDamaged: If the stored bytes hash to something else.
        """
        ...


class ModelServer(Protocol):
    """The inference server (Triton) as far as deployment is concerned."""

    async def deploy(self, serving_name: str, onnx_model: bytes, n_features: int) -> None:
        """Makes the model serve: writes it into the repository if missing, loads it unless ready, warms it.

        On failure the caller decides whether to `undeploy` (another writer may serve the same name).

        Raises:
            ServingUnavailable: If the server cannot be reached.
            DeploymentFailed: If it refuses to load or run the model.
        """
        ...

    async def undeploy(self, serving_name: str) -> None:
        """Unloads the model and removes its repository entry (best effort, idempotent)."""
        ...

    async def is_serving(self, serving_name: str) -> bool:
        """Whether the server answers and has the model ready (False when unreachable)."""
        ...


class ArtifactValidator(Protocol):
    """Checks uploaded artifacts against the declared feature names (ONNX contract, explainer)."""

    def __call__(self, onnx_model: bytes, explainer_model: bytes, feature_names: Sequence[str]) -> dict[str, str]:
        """Returns ``check name -> detail`` for every check passed.

        Raises:
            InvalidArtifact: Naming the first check that failed.
        """
        ...
