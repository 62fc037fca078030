"""Request validation for every gRPC service: protovalidate rules written in the protos, one interceptor.

An invalid request is answered with ``INVALID_ARGUMENT``; the details name each field and rule, as
``card.pan: <message> [string.luhn]`` joined by ``"; "``, and the trailing metadata carries a
``google.rpc.Status`` with a ``google.rpc.BadRequest`` (``grpc-status-details-bin``) for richer clients.
Field values are never echoed (a PAN must not leave ingest, not even in an error).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio
import protovalidate
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from fraudshared.unary_interceptor import UnaryWrappingInterceptor

log = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def field_path(violation: protovalidate.Violation) -> str:
    """Renders a violation's field path as ``card.pan``, ``items[2].amount`` or ``labels["k"]``."""
    path = violation.proto.field
    parts: list[str] = []
    for element in path.elements if path is not None else ():
        text = element.field_name or str(element.field_number)
        subscript = element.subscript
        if subscript is not None:
            key = subscript.value
            text += f'["{key}"]' if isinstance(key, str) else f"[{str(key).lower() if isinstance(key, bool) else key}]"
        parts.append(text)
    return ".".join(parts)


def describe_violations(violations: Sequence[protovalidate.Violation], message_name: str = "") -> str:
    """Formats violations as ``<field path>: <message> [<rule id>]`` joined by ``"; "``.

    Args:
        violations: What protovalidate found.
        message_name: Shown in place of the path for message-level rules (empty path).

    Returns:
        The human-readable details string.
    """
    items = []
    for violation in violations:
        proto = violation.proto
        items.append(f"{field_path(violation) or message_name}: {proto.message} [{proto.rule_id}]")
    return "; ".join(items)


def bad_request_status(details: str, violations: Sequence[protovalidate.Violation]) -> status_pb2.Status:
    """Builds the ``google.rpc.Status`` (code INVALID_ARGUMENT) with one BadRequest field violation each."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=field_path(v), description=f"{v.proto.message} [{v.proto.rule_id}]", reason=v.proto.rule_id
            )
            for v in violations
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(bad_request)
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=details, details=[packed])


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class ValidationInterceptor(UnaryWrappingInterceptor):
    """Validates the request of every unary-request RPC with protovalidate before the servicer sees it.

    Streaming-request RPCs pass through unchanged (validate per message in the servicer if one is added).
    """

    def __init__(self, validator: protovalidate.Validator | None = None) -> None:
        super().__init__()
        self._validator = validator or protovalidate.Validator()

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            self._wrap_unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_unary(self, behavior: Callable[..., Any]) -> Behavior:
        async def validated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self.check(request, context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return validated

    async def check(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Aborts the RPC with INVALID_ARGUMENT (or INTERNAL for broken rules) if ``request`` is invalid."""
        if not isinstance(request, Message):
            return
        try:
            violations = self._validator.collect_violations(request)
        except (protovalidate.CompilationError, protovalidate.EvaluationError) as exc:
            # A rule that cannot compile or evaluate is our bug, not the caller's.
            log.error("validation rules failed for %s: %s", request.DESCRIPTOR.full_name, exc)
            await context.abort(grpc.StatusCode.INTERNAL, "request validation rules failed")
            return
        if not violations:
            return
        details = describe_violations(violations, request.DESCRIPTOR.full_name)
        status = bad_request_status(details, violations)
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            details,
            trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
        )
