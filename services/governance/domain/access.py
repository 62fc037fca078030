"""Role grants as governance decides them: pure checks before a RoleGranted or RoleRevoked is appended.

Which role may call which method is the shared policy's business (`fraudshared.identity.policy`, checked by the
auth interceptor before the call arrives); what is decided here is whether a grant or revocation makes sense:
a known role, a well-formed principal, and four eyes on access too (an admin may not grant itself a role).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from fraudshared.identity.principal import AuthError, Principal
from services.governance.domain.errors import InvalidCommand, InvalidTransition


@dataclass(frozen=True)
class RoleChange:
    """A grant or revocation asked for by ``actor`` (the authenticated caller's principal id)."""

    principal_id: str
    role: str
    actor: str
    reason: str = ""


def check_role_change(change: RoleChange, roles: Collection[str], *, granting: bool) -> Principal:
    """Checks a grant (``granting``) or a revocation; returns the principal it concerns.

    Raises:
        InvalidCommand: If the principal id is malformed or the role is not one of ``roles``.
        InvalidTransition: If an actor grants a role to itself (four eyes: another admin must).
    """
    try:
        principal = Principal.parse(change.principal_id)
    except AuthError as exc:
        raise InvalidCommand(f"principal: {exc.reason}") from None
    if change.role not in roles:
        raise InvalidCommand(f"unknown role {change.role!r}; one of {', '.join(roles)}")
    if granting and principal.id == change.actor:
        raise InvalidTransition(f"four eyes: {change.actor} may not grant a role to itself; another admin must")
    return principal
