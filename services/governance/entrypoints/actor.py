"""Who acts: the authenticated caller, never a request field.

The auth interceptor in front of every servicer sets `current_principal()`; the commands carry its id. The
deprecated actor fields of old requests (``approver``, ``registered_by``, ``deployed_by``, ``promoted_by``,
``rolled_back_by``) are ignored, but one naming somebody else is refused: an old client must not believe it
approved as someone it is not.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
import grpc.aio
from google.protobuf.message import Message

from fraudshared.identity.principal import NoPrincipal, current_principal


async def actor_id(context: grpc.aio.ServicerContext, request: Message, deprecated_field: str) -> str:
    """The caller's principal id, after checking the request's deprecated actor field does not contradict it.

    An empty field, the caller's principal id (``user:alice``) or its bare name (``alice``) is accepted.

    Raises:
        grpc.aio.AbortError: UNAUTHENTICATED outside an authenticated call; INVALID_ARGUMENT naming the field
            when it names someone else.
    """
    try:
        principal = current_principal()
    except NoPrincipal:
        await _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no authenticated caller")
    claimed = getattr(request, deprecated_field)
    if claimed and claimed not in (principal.id, principal.name):
        await _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{deprecated_field} is deprecated and ignored: the authenticated caller ({principal.id}) is the actor;"
            f" it names someone else, so nothing was done (leave it empty)",
        )
    return principal.id


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # it always raises
