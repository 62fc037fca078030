"""Ports of the scoring service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fraud.events.v1 import transaction_events_pb2 as events
from services.scoring.domain.catalog import ServingModel


class InferenceError(RuntimeError):
    """The model server did not give a usable score (down, slow, or garbage)."""


class ModelRunner(Protocol):
    async def score(self, triton_model_name: str, values: Sequence[float], timeout: float) -> float:
        """Fraud probability of one feature vector; raises InferenceError."""
        ...

    async def live(self, timeout: float) -> bool:
        """Whether the model server answers at all (a model it lacks is then not loaded, not unreachable)."""
        ...


class LocalModels(Protocol):
    """In-process copies of the serving artifacts (second rung) and their explainers."""

    def prepare(self, model: ServingModel) -> None: ...

    def score(self, sha256: str, values: Sequence[float]) -> float | None: ...

    def contributions(self, sha256: str, values: Sequence[float]) -> list[float] | None: ...


class PredictionLog(Protocol):
    async def append_prediction(self, event: events.PredictionMade) -> events.PredictionMade | None:
        """Append once per transaction; return the already recorded prediction on a retry."""
        ...

    async def append_shadow(self, event: events.ShadowScored) -> None:
        """Record a shadow model's score (once per transaction and model)."""
        ...
