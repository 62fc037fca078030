"""Base for server interceptors that wrap unary-unary handlers, building each wrapper once per method.

grpc.aio asks every interceptor for a handler on every call; building a new wrapper each time showed up in
profiles of the hot path, so wrappers are cached per (method, inner handler). A subclass that wraps streaming
handlers too (the request guard) sets `unary_only` to False.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import grpc.aio


class UnaryWrappingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses implement `wrap`; streaming handlers pass through unchanged unless `unary_only` is False."""

    unary_only = True

    def __init__(self) -> None:
        self._wrapped: dict[tuple[str, int], grpc.RpcMethodHandler] = {}

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        """The handler to use instead of `handler` for `full_method` (a unary-unary one while `unary_only`)."""
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or (self.unary_only and (handler.request_streaming or handler.unary_unary is None)):
            return handler
        key = (handler_call_details.method, id(handler))
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = self._wrapped[key] = self.wrap(handler, handler_call_details.method)
        return wrapped
