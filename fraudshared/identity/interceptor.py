"""The server side of identity: authenticate every call, authorize it against the access table.

A bearer token (metadata ``authorization: Bearer <jwt>``) is verified by the `OidcVerifier`; otherwise the
peer certificate's SPIFFE id names the caller (grpc has already verified the certificate against our CA
during the handshake). The principal's roles come from the live `Grants` fold, so a revocation applies to
the next call. The handler then reads the caller with `current_principal()`.

Hot path: one ``auth_context()`` read, a dict lookup from the peer's SPIFFE id to its parsed principal, and
a frozenset intersection; the allowed roles of each method are looked up once, when its wrapper is built.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Mapping
from typing import Any, NoReturn

import grpc
import grpc.aio

from fraudshared.identity.grants import Grants
from fraudshared.identity.oidc import OidcVerifier
from fraudshared.identity.policy import ACCESS, ANY_PRINCIPAL, OPEN, roles_text
from fraudshared.identity.principal import DEFAULT_TRUST_DOMAIN, AuthError, Principal, reset_principal, set_principal
from fraudshared.unary_interceptor import UnaryWrappingInterceptor

_NO_CREDENTIAL = "no client certificate or bearer token"
_CACHE_LIMIT = 4096
_BEARER = "bearer "


class AuthInterceptor(UnaryWrappingInterceptor):
    """Authenticates (certificate or bearer token) and authorizes (access table + grants) every call."""

    unary_only = False

    def __init__(
        self,
        grants: Grants,
        verifier: OidcVerifier | None = None,
        access: Mapping[str, frozenset[str]] = ACCESS,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
    ) -> None:
        """Creates the interceptor.

        Args:
            grants: The live fold of role grants.
            verifier: Verifies bearer tokens; None refuses them.
            access: Full method name -> roles allowed (a method not in it is denied).
            trust_domain: The SPIFFE trust domain certificates must name.
        """
        super().__init__()
        self._grants = grants
        self._verifier = verifier
        self._access = access
        self._trust_domain = trust_domain
        self._by_peer: dict[bytes, Principal] = {}

    async def authenticate(self, context: grpc.aio.ServicerContext) -> Principal:
        """The caller of the current call.

        Raises:
            AuthError: When the caller presented no usable credential.
        """
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                if not isinstance(value, str) or value[: len(_BEARER)].lower() != _BEARER:
                    raise AuthError("authorization metadata must be 'Bearer <token>'")
                if self._verifier is None:
                    raise AuthError("bearer tokens are not accepted here (no OIDC issuer configured)")
                return await asyncio.to_thread(self._verifier.verify, value[len(_BEARER) :].strip())
        auth = context.auth_context()
        uris = auth.get("peer_spiffe_id")
        if not uris:
            if auth.get("x509_pem_cert"):
                raise AuthError("client certificate carries no single spiffe:// identity")
            raise AuthError(_NO_CREDENTIAL)
        uri = uris[0]
        principal = self._by_peer.get(uri)
        if principal is None:
            principal = Principal.from_spiffe_id(uri.decode("utf-8", "replace"), self._trust_domain)
            if len(self._by_peer) >= _CACHE_LIMIT:
                self._by_peer.clear()
            self._by_peer[uri] = principal
        return principal

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        needed = self._access.get(full_method)
        if needed is OPEN:
            return handler
        method = full_method.rsplit("/", 1)[-1]
        grants = self._grants

        async def admit(context: grpc.aio.ServicerContext) -> Principal:
            try:
                principal = await self.authenticate(context)
            except AuthError as exc:
                await _abort(context, grpc.StatusCode.UNAUTHENTICATED, exc.reason)
            if needed is None:
                await _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{method} is not open to any caller")
            if needed is not ANY_PRINCIPAL and needed.isdisjoint(grants.roles_of(principal)):
                if grants.following and not grants.restored:  # starting: the grant may not be read yet
                    await _abort(context, grpc.StatusCode.UNAVAILABLE, "access grants not read yet; retry shortly")
                why = f"{principal.id} may not call {method}: needs one of {roles_text(needed)}"
                await _abort(context, grpc.StatusCode.PERMISSION_DENIED, why)
            return principal

        return _wrapped(handler, admit)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("unreachable")  # context.abort raises


def _wrapped(handler: grpc.RpcMethodHandler, admit: Any) -> grpc.RpcMethodHandler:
    """``handler`` with ``admit(context)`` run first and its principal current while the behavior runs."""
    kinds = {
        (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
        (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
        (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
        (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
    }
    attribute, factory = kinds[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, attribute)

    if handler.response_streaming:

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            token = set_principal(await admit(context))
            try:
                result = behavior(request, context)
                if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
                    async for response in result:
                        yield response
                else:  # a behavior that writes with context.write and returns a coroutine
                    await result
            finally:
                reset_principal(token)

        new_behavior: Any = streaming
    else:

        async def single(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = set_principal(await admit(context))
            try:
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            finally:
                reset_principal(token)

        new_behavior = single
    return factory(
        new_behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
