"""Errors the ingest use cases raise; the gRPC entrypoint maps each to a status code."""

from __future__ import annotations


class InvalidTransaction(ValueError):
    """A field passed the schema rules but fails a domain rule (e.g. the PAN's Luhn check)."""

    def __init__(self, field: str, reason: str, rule: str) -> None:
        super().__init__(f"{field}: {reason} [{rule}]")
        self.field = field
        self.reason = reason
        self.rule = rule


class TransactionIdReused(ValueError):
    """The transaction id was already used for a different transaction."""


class UnknownTransaction(LookupError):
    """A label refers to a transaction the log does not hold."""


class DependencyUnavailable(RuntimeError):
    """A downstream service did not answer within the caller's budget."""


class Overloaded(RuntimeError):
    """A downstream service shed the request; the caller may retry (the transaction id makes it safe)."""


class BudgetExhausted(TimeoutError):
    """The caller's deadline passed before a downstream service answered."""


class LabelContention(RuntimeError):
    """Other labels of the transaction kept arriving while this one was being recorded; retrying is safe."""


class CardholderUnknown(LookupError):
    """No subject for the card: never seen by this platform, or already forgotten."""
