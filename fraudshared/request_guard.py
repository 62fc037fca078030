"""No request reaches a caller as a Python exception: undecodable bodies and unexpected errors get clear codes.

grpc.aio turns anything a deserializer or handler raises into ``UNKNOWN`` with the exception's class and text
as details ("Unexpected <class 'google.protobuf.message.DecodeError'>: ..."). `GuardInterceptor` wraps every
handler instead:

- its request deserializer: a body that does not parse (bad protobuf bytes, invalid UTF-8 in a string field)
  becomes an `UndecodableRequest`, which the wrapped behavior answers ``INVALID_ARGUMENT`` with a clear
  message before anything else sees it (a deserializer has no context to abort with);
- its behavior: an unexpected exception becomes ``INTERNAL`` with a generic message and a reference id, and
  the traceback is logged with the same id. Aborts (``context.abort``) and cancellation pass through.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
import grpc.aio

from fraudshared.unary_interceptor import UnaryWrappingInterceptor

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]


class UndecodableRequest:
    """Stands in for a request whose bytes did not parse; says why without the parser's exception text."""

    __slots__ = ("message_type", "reason")

    def __init__(self, message_type: str, reason: str) -> None:
        self.message_type = message_type
        self.reason = reason

    @property
    def details(self) -> str:
        """The INVALID_ARGUMENT details shown to the caller."""
        return f"request is not a valid {self.message_type}: {self.reason}"


def _type_name(deserializer: Deserializer) -> str:
    owner = getattr(deserializer, "__self__", None)  # Message.FromString is bound to the message class
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "")) or "request message"


def guarded(deserializer: Deserializer) -> Deserializer:
    """`deserializer`, returning an `UndecodableRequest` where it would raise."""
    message_type = _type_name(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or whatever a hand-written deserializer raises
            reason = "a string field is not valid UTF-8" if "UTF-8" in str(exc) else "not a protobuf encoding of it"
            return UndecodableRequest(message_type, reason)

    return deserialize


async def _refuse(request: UndecodableRequest, context: grpc.aio.ServicerContext) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
    raise AssertionError("context.abort returned")  # it always raises


async def _internal(context: grpc.aio.ServicerContext, method: str) -> NoReturn:
    reference = uuid.uuid4().hex[:16]
    log.exception("%s failed unexpectedly (reference %s)", method, reference)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error; reference {reference}")
    raise AssertionError("context.abort returned")


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, UndecodableRequest):
            await _refuse(request, context)
        yield request


class GuardInterceptor(UnaryWrappingInterceptor):
    """Wraps every handler's deserializer and behavior (see the module docstring); wrappers built once each."""

    unary_only = False

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The guarded form of ``handler``; a synchronous streaming handler is left as it is."""
        deserializer = handler.request_deserializer
        kwargs = {
            "request_deserializer": guarded(deserializer) if deserializer is not None else None,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, method), **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(_stream_in(handler.stream_unary, method), **kwargs)
        behavior = handler.unary_stream or handler.stream_stream
        if inspect.iscoroutinefunction(behavior):  # writes with context.write
            guarded_behavior: Callable[..., Any] = _coroutine(behavior, method, handler.request_streaming)
        elif inspect.isasyncgenfunction(behavior):
            guarded_behavior = _generator(behavior, method, handler.request_streaming)
        else:
            return handler
        if handler.request_streaming:
            return grpc.stream_stream_rpc_method_handler(guarded_behavior, **kwargs)
        return grpc.unary_stream_rpc_method_handler(guarded_behavior, **kwargs)


def _unary(behavior: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
    async def guarded_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, UndecodableRequest):
            await _refuse(request, context)
        try:
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
        except grpc.aio.AbortError:
            raise
        except Exception:
            await _internal(context, method)

    return guarded_unary


def _stream_in(behavior: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
    async def guarded_stream_in(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        try:
            result = behavior(_checked(requests, context), context)
            return await result if inspect.isawaitable(result) else result
        except grpc.aio.AbortError:
            raise
        except Exception:
            await _internal(context, method)

    return guarded_stream_in


def _coroutine(behavior: Callable[..., Any], method: str, streaming: bool) -> Callable[..., Awaitable[None]]:
    async def guarded_coroutine(request: Any, context: grpc.aio.ServicerContext) -> None:
        if isinstance(request, UndecodableRequest):
            await _refuse(request, context)
        try:
            await behavior(_checked(request, context) if streaming else request, context)
        except grpc.aio.AbortError:
            raise
        except Exception:
            await _internal(context, method)

    return guarded_coroutine


def _generator(behavior: Callable[..., Any], method: str, streaming: bool) -> Callable[..., AsyncIterator[Any]]:
    async def guarded_generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, UndecodableRequest):
            await _refuse(request, context)
        try:
            async for response in behavior(_checked(request, context) if streaming else request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception:
            await _internal(context, method)

    return guarded_generator
