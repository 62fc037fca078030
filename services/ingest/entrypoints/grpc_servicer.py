"""IngestService over gRPC: schema rules are checked by the shared interceptor, domain errors mapped here."""

from __future__ import annotations

import grpc

from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from services.ingest.domain.errors import (
    BudgetExhausted,
    DependencyUnavailable,
    InvalidTransaction,
    Overloaded,
    TransactionIdReused,
    UnknownTransaction,
)
from services.ingest.service_layer import handlers

STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    InvalidTransaction: grpc.StatusCode.INVALID_ARGUMENT,
    TransactionIdReused: grpc.StatusCode.ALREADY_EXISTS,
    UnknownTransaction: grpc.StatusCode.NOT_FOUND,
    DependencyUnavailable: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    BudgetExhausted: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class IngestServicer(ingest_grpc.IngestServiceServicer):
    def __init__(self, deps: handlers.IngestDeps) -> None:
        self._deps = deps

    async def ScoreTransaction(
        self, request: ingest.ScoreTransactionRequest, context: grpc.aio.ServicerContext
    ) -> ingest.ScoreTransactionResponse:
        try:
            return await handlers.score_transaction(request, self._deps, _budget(context))
        except tuple(STATUS_OF) as exc:
            await context.abort(STATUS_OF[type(exc)], str(exc))
            raise  # unreachable: abort raises

    async def ReportLabel(
        self, request: ingest.ReportLabelRequest, context: grpc.aio.ServicerContext
    ) -> ingest.ReportLabelResponse:
        try:
            return await handlers.report_label(request, self._deps)
        except tuple(STATUS_OF) as exc:
            await context.abort(STATUS_OF[type(exc)], str(exc))
            raise


def _budget(context: grpc.aio.ServicerContext) -> float | None:
    """Seconds the caller still waits (its gRPC deadline), or None without one."""
    left = context.time_remaining()
    return None if left is None else float(left)
