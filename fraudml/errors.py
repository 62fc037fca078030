"""Errors of the ML tooling that the CLI prints as one line (plus `details`), without a traceback.

Kept free of heavy imports, so `fraudctl` can list these types in FRIENDLY_ERRORS at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence


class FraudMLError(Exception):
    """A problem with the user's input to data loading or training, explained in one line."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


class DataLoadError(FraudMLError):
    """A data file that does not meet the documented schema; `details` names row and column per problem."""


class TrainingError(FraudMLError):
    """Training cannot run on the given data or options (e.g. too few days, no labels)."""
