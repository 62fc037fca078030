"""Use cases of the AccessService: grant and revoke roles, list who holds which.

Grants are events (RoleGranted / RoleRevoked on the ACCESS stream); the fold every service follows
(`fraudshared.identity.grants.Grants`) is what the auth interceptor reads, and what ListGrants answers from.
The acting principal is the authenticated caller, recorded as ``granted_by``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from fraudshared.identity.grants import GrantEntry
from services.governance.domain.access import RoleChange, check_role_change


class RoleLog(Protocol):
    """Appends role grants and revocations to the access log."""

    async def grant(self, principal_id: str, role: str, granted_by: str, reason: str) -> bool:
        """Appends RoleGranted; False when the principal already holds the role (nothing appended)."""
        ...

    async def revoke(self, principal_id: str, role: str, granted_by: str, reason: str) -> bool:
        """Appends RoleRevoked; False when the principal does not hold the role (nothing appended)."""
        ...


class GrantsFold(Protocol):
    """The current grants, folded from the access log."""

    def entries(self) -> Iterable[GrantEntry]:
        """Every grant in force."""
        ...


@dataclass
class Access:
    """What the access use cases need, wired by the composition root."""

    log: RoleLog
    grants: GrantsFold
    roles: tuple[str, ...]


async def grant(access: Access, change: RoleChange) -> bool:
    """Grants ``change.role`` to ``change.principal_id`` as ``change.actor``.

    Returns:
        True when RoleGranted was appended, False when the principal held the role already.

    Raises:
        InvalidCommand: If the principal or role is malformed or unknown.
        InvalidTransition: If the actor grants itself a role.
    """
    principal = check_role_change(change, access.roles, granting=True)
    return await access.log.grant(principal.id, change.role, change.actor, change.reason)


async def revoke(access: Access, change: RoleChange) -> bool:
    """Revokes ``change.role`` from ``change.principal_id`` as ``change.actor``.

    Returns:
        True when RoleRevoked was appended, False when the principal did not hold the role.

    Raises:
        InvalidCommand: If the principal or role is malformed or unknown.
    """
    principal = check_role_change(change, access.roles, granting=False)
    return await access.log.revoke(principal.id, change.role, change.actor, change.reason)


def list_grants(access: Access, principal_id: str = "") -> list[GrantEntry]:
    """The grants in force, optionally of one principal, ordered by principal then role."""
    entries = [e for e in access.grants.entries() if not principal_id or e.principal == principal_id]
    return sorted(entries, key=lambda e: (e.principal, e.role))
