"""AccessService over grpc.aio: grant and revoke roles as the authenticated caller, list the grants in force.

Who may call which method (GrantRole and RevokeRole: admin; ListGrants: admin, auditor) is checked by the
shared auth interceptor before a call arrives; this layer takes the actor from `current_principal()` and maps
the domain's refusals to status codes (an admin granting itself a role: FAILED_PRECONDITION).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any, NoReturn

import grpc
import grpc.aio
import nats.errors

from fraud.access.v1 import access_service_pb2 as pb
from fraud.access.v1 import access_service_pb2_grpc as pb_grpc
from fraudshared.events.store import ConcurrencyError
from fraudshared.identity.grants import GrantEntry
from fraudshared.identity.principal import NoPrincipal, current_principal
from services.governance.domain import errors
from services.governance.domain.access import RoleChange
from services.governance.service_layer import access

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AccessService"].full_name
STATUS_OF: tuple[tuple[type[errors.GovernanceError], grpc.StatusCode], ...] = (
    (errors.InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.InvalidCommand, grpc.StatusCode.INVALID_ARGUMENT),
)


def grant_to_proto(entry: GrantEntry) -> pb.Grant:
    """The wire form of one grant in force (an entry of the `Grants` fold)."""
    grant = pb.Grant(
        principal=entry.principal,
        role=entry.role,
        granted_by=entry.granted_by,
        reason=entry.reason,
        sequence=entry.sequence,
    )
    grant.granted_at.FromDatetime(entry.time.astimezone(UTC))
    return grant


class AccessServicer(pb_grpc.AccessServiceServicer):
    """Thin adapter from gRPC to the access use cases."""

    def __init__(self, access_: access.Access) -> None:
        """Serves the use cases over ``access_``'s role log and grants fold."""
        self.access = access_

    async def _change(self, request: Any, context: grpc.aio.ServicerContext, use_case: Callable[..., Any]) -> bool:
        try:
            actor = current_principal().id
        except NoPrincipal:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no authenticated caller")
        change = RoleChange(request.principal, request.role, actor, request.reason)
        try:
            changed: bool = await use_case(self.access, change)
        except errors.GovernanceError as exc:
            code = next((c for kind, c in STATUS_OF if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)
            await _abort(context, code, str(exc))
        except ConcurrencyError:
            details = f"concurrent change to the grants of {change.principal_id}, retry"
            await _abort(context, grpc.StatusCode.ABORTED, details)
        except (nats.errors.Error, TimeoutError, ConnectionError) as exc:
            log.warning("access log unavailable: %r", exc)
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "access log unavailable, retry")
        return changed

    async def GrantRole(self, request: pb.GrantRoleRequest, context: grpc.aio.ServicerContext) -> pb.GrantRoleResponse:
        return pb.GrantRoleResponse(changed=await self._change(request, context, access.grant))

    async def RevokeRole(
        self, request: pb.RevokeRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeRoleResponse:
        return pb.RevokeRoleResponse(changed=await self._change(request, context, access.revoke))

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        entries = access.list_grants(self.access, request.principal)
        return pb.ListGrantsResponse(grants=[grant_to_proto(e) for e in entries])


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # it always raises
