"""Request validation for every gRPC service: protovalidate rules written in the protos, one interceptor.

An invalid request is answered with ``INVALID_ARGUMENT``; the details name each field and rule, as
``card.pan: <message> [string.luhn]`` joined by ``"; "``, and the trailing metadata carries a
``google.rpc.Status`` with a ``google.rpc.BadRequest`` (``grpc-status-details-bin``) for richer clients.
Field values are never echoed (a PAN must not leave ingest, not even in an error).

Before the proto rules, every ``google.protobuf.Timestamp`` and ``Duration`` anywhere in a request is checked
against the ranges their own definitions allow (nanos in [0, 1e9), years 0001-9999): code that converts them
(``ToDatetime``, CEL) raises on anything else, and the check is generic so a new field is covered at once.
A service's domain rules that protovalidate cannot say answer the same shape through `abort_invalid`.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import protovalidate
from google.protobuf import any_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from fraudshared.unary_interceptor import UnaryWrappingInterceptor

log = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# google/protobuf/timestamp.proto: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
TIMESTAMP_MIN_SECONDS, TIMESTAMP_MAX_SECONDS = -62_135_596_800, 253_402_300_799
# google/protobuf/duration.proto: about +-10,000 years.
DURATION_MAX_SECONDS = 315_576_000_000
NANOS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True)
class FieldViolation:
    """One broken rule: the field's path, what is wrong (never the value) and the rule's id."""

    field: str
    message: str
    rule_id: str


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


def _as_field_violation(violation: FieldViolation | protovalidate.Violation) -> FieldViolation:
    if isinstance(violation, FieldViolation):
        return violation
    return FieldViolation(field_path(violation), violation.proto.message, violation.proto.rule_id)


def _timestamp_problem(seconds: int, nanos: int) -> str:
    if not 0 <= nanos < NANOS_PER_SECOND:
        return "must be a valid timestamp: nanos in [0, 1e9)"
    if not TIMESTAMP_MIN_SECONDS <= seconds <= TIMESTAMP_MAX_SECONDS:
        return "must be a valid timestamp: within the years 0001 to 9999"
    return ""


def _duration_problem(seconds: int, nanos: int) -> str:
    if not -DURATION_MAX_SECONDS <= seconds <= DURATION_MAX_SECONDS or not -NANOS_PER_SECOND < nanos < NANOS_PER_SECOND:
        return "must be a valid duration: seconds within +-315576000000, nanos within +-999999999"
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        return "must be a valid duration: seconds and nanos of the same sign"
    return ""


WELL_KNOWN_CHECKS: dict[str, tuple[str, Callable[[int, int], str]]] = {
    "google.protobuf.Timestamp": ("timestamp.valid", _timestamp_problem),
    "google.protobuf.Duration": ("duration.valid", _duration_problem),
}


@functools.cache
def may_hold(descriptor: Descriptor, full_names: frozenset[str]) -> bool:
    """Whether a message of type ``descriptor`` can hold, at any depth, a message of one of ``full_names``."""
    seen: set[str] = set()
    pending = [descriptor]
    while pending:
        current = pending.pop()
        for field in current.fields:
            child = field.message_type
            if child is None or child.full_name in seen:
                continue
            if child.full_name in full_names:
                return True
            seen.add(child.full_name)
            pending.append(child)
    return False


class Shape(enum.Enum):
    """How a message field holds its values."""

    SINGULAR = "singular"
    REPEATED = "repeated"
    MAP = "map"  # the values of a map<_, message>


@dataclass(frozen=True, slots=True)
class Route:
    """A field of a message type whose values are, or may hold, a message of the types looked for.

    Attributes:
        name: The field's name.
        shape: Singular, repeated, or a map's values.
        target: The full name of the values' type when it is one of those looked for ("" when they may hold one).
    """

    name: str
    shape: Shape
    target: str


@functools.cache
def routes(descriptor: Descriptor, full_names: frozenset[str]) -> tuple[Route, ...]:
    """The fields of ``descriptor`` that are or may hold a message of ``full_names``, in field-number order.

    Cached per type, so the request walkers below read only those fields and no descriptor per request
    (descriptors and ``ListFields`` cost microseconds each with upb); subtrees such as Money or GeoPoint
    are never entered. Field-number order is ``ListFields`` order, so paths come out as they always did.
    """
    found: list[Route] = []
    for field in sorted(descriptor.fields, key=lambda f: f.number):
        child, shape = field.message_type, Shape.REPEATED if field.is_repeated else Shape.SINGULAR
        if child is not None and child.GetOptions().map_entry:
            child, shape = child.fields_by_name["value"].message_type, Shape.MAP
        if child is None:
            continue
        if child.full_name in full_names:
            found.append(Route(field.name, shape, child.full_name))
        elif may_hold(child, full_names):
            found.append(Route(field.name, shape, ""))
    return tuple(found)


def held(message: Message, full_names: frozenset[str], prefix: str = "") -> Iterator[tuple[str, str, Message]]:
    """Every set message value of ``message`` that is or may hold one of ``full_names``: (path, target, value).

    Paths read ``a.b``, ``a[2]`` or ``m["k"]``; ``target`` is the value's type when it is one of ``full_names``
    and "" when the value is a message to look inside.
    """
    for route in routes(message.DESCRIPTOR, full_names):
        path = prefix + route.name
        if route.shape is Shape.SINGULAR:
            if message.HasField(route.name):
                yield path, route.target, getattr(message, route.name)
            continue
        value = getattr(message, route.name)
        if route.shape is Shape.REPEATED:
            yield from ((f"{path}[{index}]", route.target, item) for index, item in enumerate(value))
        else:
            yield from ((f'{path}["{key}"]', route.target, item) for key, item in value.items())


_WELL_KNOWN = frozenset(WELL_KNOWN_CHECKS)


def well_known_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Timestamps and Durations anywhere in ``message`` outside the ranges their definitions allow."""
    found: list[FieldViolation] = []
    for path, target, value in held(message, _WELL_KNOWN, prefix):
        if not target:
            found += well_known_violations(value, path + ".")
            continue
        rule_id, problem_of = WELL_KNOWN_CHECKS[target]
        problem = problem_of(value.seconds, value.nanos)
        if problem:
            found.append(FieldViolation(path, problem, rule_id))
    return found


def describe_violations(violations: Sequence[FieldViolation | protovalidate.Violation], message_name: str = "") -> str:
    """Formats violations as ``<field path>: <message> [<rule id>]`` joined by ``"; "``.

    Args:
        violations: What protovalidate (or a domain rule) found.
        message_name: Shown in place of the path for message-level rules (empty path).

    Returns:
        The human-readable details string.
    """
    items = []
    for violation in map(_as_field_violation, violations):
        items.append(f"{violation.field or message_name}: {violation.message} [{violation.rule_id}]")
    return "; ".join(items)


def bad_request_status(
    details: str, violations: Sequence[FieldViolation | protovalidate.Violation]
) -> status_pb2.Status:
    """Builds the ``google.rpc.Status`` (code INVALID_ARGUMENT) with one BadRequest field violation each."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=v.field, description=f"{v.message} [{v.rule_id}]", reason=v.rule_id
            )
            for v in map(_as_field_violation, violations)
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(bad_request)
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=details, details=[packed])


async def abort_invalid(
    context: grpc.aio.ServicerContext,
    violations: Sequence[FieldViolation | protovalidate.Violation],
    message_name: str = "",
) -> None:
    """Ends the RPC with INVALID_ARGUMENT naming each field and rule (details and BadRequest trailer).

    Raises:
        grpc.aio.AbortError: Always (that is how grpc.aio ends an RPC from a handler).
    """
    details = describe_violations(violations, message_name)
    status = bad_request_status(details, violations)
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        details,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )


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
        # Out-of-range Timestamps first: the CEL rules would have to convert them, and cannot.
        violations: Sequence[FieldViolation | protovalidate.Violation] = well_known_violations(request)
        if not violations:
            try:
                violations = self._validator.collect_violations(request)
            except (protovalidate.CompilationError, protovalidate.EvaluationError) as exc:
                # A rule that cannot compile or evaluate is our bug, not the caller's.
                log.error("validation rules failed for %s: %s", request.DESCRIPTOR.full_name, exc)
                await context.abort(grpc.StatusCode.INTERNAL, "request validation rules failed")
                return
        if violations:
            await abort_invalid(context, violations, request.DESCRIPTOR.full_name)
