"""The access log on JetStream: RoleGranted / RoleRevoked appended through the shared identity kernel."""

from __future__ import annotations

from nats.js import JetStreamContext

from fraudshared.identity.grants import grant_role, revoke_role


class JetStreamRoleLog:
    """`RoleLog` on the ACCESS stream (`fraudshared.identity.grants` owns its subjects and events)."""

    def __init__(self, js: JetStreamContext) -> None:
        """Appends through ``js``."""
        self.js = js

    async def grant(self, principal_id: str, role: str, granted_by: str, reason: str) -> bool:
        """Appends RoleGranted; False when the principal already holds the role."""
        return await grant_role(self.js, principal_id, role, granted_by, reason)

    async def revoke(self, principal_id: str, role: str, granted_by: str, reason: str) -> bool:
        """Appends RoleRevoked; False when the principal does not hold the role."""
        return await revoke_role(self.js, principal_id, role, granted_by, reason)
