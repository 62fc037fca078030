"""IngestService over gRPC: the shared interceptor checks the schema rules, this module ingest's own ones.

Ingest's own rules (`services.ingest.domain.request_rules`: no card number in an id, no time beyond the
configured future skew) answer INVALID_ARGUMENT in the interceptor's shape, before the use case runs. Errors
carry our own messages only; a downstream failure's details are logged under a reference, not forwarded.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import grpc
import grpc.aio
from google.protobuf.message import Message

from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudshared.config import ConfigError, EnvConfig, env_field
from fraudshared.validation import FieldViolation, abort_invalid
from services.ingest.domain.errors import (
    BudgetExhausted,
    CardholderUnknown,
    DependencyUnavailable,
    InvalidTransaction,
    LabelContention,
    Overloaded,
    TransactionIdReused,
    UnknownTransaction,
)
from services.ingest.domain.label_sources import LabelSourceNotAllowed
from services.ingest.domain.request_rules import request_violations
from services.ingest.service_layer import handlers, privacy

log = logging.getLogger(__name__)
MAX_FUTURE_SKEW_LIMIT_S = 86_400.0  # the protos refuse anything later than a day ahead anyway

STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    InvalidTransaction: grpc.StatusCode.INVALID_ARGUMENT,
    TransactionIdReused: grpc.StatusCode.ALREADY_EXISTS,
    UnknownTransaction: grpc.StatusCode.NOT_FOUND,
    DependencyUnavailable: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    BudgetExhausted: grpc.StatusCode.DEADLINE_EXCEEDED,
    LabelContention: grpc.StatusCode.ABORTED,
    CardholderUnknown: grpc.StatusCode.NOT_FOUND,
    LabelSourceNotAllowed: grpc.StatusCode.PERMISSION_DENIED,
}


@dataclass(frozen=True)
class RequestLimits(EnvConfig):
    """Ingest's configurable request bounds (see docs/config.md)."""

    max_future_skew_s: float = env_field("FRAUD_INGEST_MAX_FUTURE_SKEW_S", 300.0)

    def __post_init__(self) -> None:
        if not 0 <= self.max_future_skew_s <= MAX_FUTURE_SKEW_LIMIT_S:
            raise ConfigError(
                f"FRAUD_INGEST_MAX_FUTURE_SKEW_S must be between 0 and {MAX_FUTURE_SKEW_LIMIT_S:g}, "
                f"got {self.max_future_skew_s:g}"
            )


class IngestServicer(ingest_grpc.IngestServiceServicer):
    def __init__(
        self,
        deps: handlers.IngestDeps,
        limits: RequestLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._deps = deps
        self._limits = limits or RequestLimits.from_env()
        self._clock = clock

    async def ScoreTransaction(
        self, request: ingest.ScoreTransactionRequest, context: grpc.aio.ServicerContext
    ) -> ingest.ScoreTransactionResponse:
        await self._check(request, context)
        try:
            return await handlers.score_transaction(request, self._deps, _budget(context))
        except tuple(STATUS_OF) as exc:
            await _abort(context, exc)

    async def ReportLabel(
        self, request: ingest.ReportLabelRequest, context: grpc.aio.ServicerContext
    ) -> ingest.ReportLabelResponse:
        await self._check(request, context)
        try:
            return await handlers.report_label(request, self._deps)
        except tuple(STATUS_OF) as exc:
            await _abort(context, exc)

    async def ForgetCardholder(
        self, request: ingest.ForgetCardholderRequest, context: grpc.aio.ServicerContext
    ) -> ingest.ForgetCardholderResponse:
        await self._check(request, context)
        try:
            return await privacy.forget_cardholder(request, self._deps)
        except tuple(STATUS_OF) as exc:
            await _abort(context, exc)

    async def _check(self, request: Message, context: grpc.aio.ServicerContext) -> None:
        broken = request_violations(request, self._clock(), self._limits.max_future_skew_s)
        if broken:
            violations = [FieldViolation(v.field, v.reason, v.rule) for v in broken]
            await abort_invalid(context, violations, request.DESCRIPTOR.full_name)


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    """Answers ``exc`` with its status code; a subclass maps like its base."""
    code = next(code for kind, code in STATUS_OF.items() if isinstance(exc, kind))
    if isinstance(exc, InvalidTransaction):
        await abort_invalid(context, [FieldViolation(exc.field, exc.reason, exc.rule)])
    details = str(exc)
    if isinstance(exc, DependencyUnavailable):  # its text carries a downstream service's own error details
        reference = uuid.uuid4().hex[:16]
        log.warning("downstream unavailable (reference %s): %s", reference, exc)
        details = f"a downstream service is unavailable; retrying is safe (reference {reference})"
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # it always raises


def _budget(context: grpc.aio.ServicerContext) -> float | None:
    """Seconds the caller still waits (its gRPC deadline), or None without one."""
    left = context.time_remaining()
    return None if left is None else float(left)
