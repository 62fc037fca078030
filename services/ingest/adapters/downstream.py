"""Failed calls to features or scoring, mapped to ingest's domain errors the same way for either transport."""

from __future__ import annotations

import grpc

from services.ingest.domain.errors import BudgetExhausted, DependencyUnavailable, Overloaded


def downstream_failure(what: str, code: grpc.StatusCode, details: str) -> Exception:
    """The domain error for a failed call to `what` (features or scoring), whatever the transport."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return BudgetExhausted(f"{what} did not answer within the caller's deadline; retrying is safe")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Overloaded(f"{what} is overloaded; retry later")
    return DependencyUnavailable(f"{what}: {code.name}: {details}")
