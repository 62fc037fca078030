"""Role grants as events: RoleGranted / RoleRevoked on the ACCESS stream, and the fold every service keeps.

Each principal's grants live on one subject (`fraudshared.subjects.access_events`), so an append carries the
subject's expected last sequence: two admins changing the same principal at once cannot both win on a stale
read. Every service follows the whole stream (`follow_grants`) into a `Grants` fold that the auth interceptor
reads on each call; a revocation takes effect as soon as the follower applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from nats.js import JetStreamContext

from fraud.access.v1 import access_events_pb2 as pb
from fraudshared import subjects
from fraudshared.events.envelope import Envelope, event_id, new_envelope
from fraudshared.events.follow import follow
from fraudshared.events.store import ConcurrencyError, EventStore
from fraudshared.identity.policy import PLATFORM_SERVICES, ROLES, SERVICE_ROLE
from fraudshared.identity.principal import AuthError, Principal
from fraudshared.telemetry import get_logger

ACCESS_STREAM = "ACCESS"
SCHEMA_VERSION = 1
SOURCE = "/fraud/access"
_ATTEMPTS = 5
_EMPTY: frozenset[str] = frozenset()
_SERVICE_ONLY = frozenset({SERVICE_ROLE})
log = get_logger(__name__)


@dataclass(frozen=True)
class GrantEntry:
    """One role a principal holds now.

    Attributes:
        principal: Principal id, e.g. ``user:dev-admin``.
        role: The role.
        granted_by: Principal id of whoever granted it.
        reason: Why.
        time: When it was granted.
        sequence: ACCESS stream sequence of the RoleGranted (0 when applied without one).
    """

    principal: str
    role: str
    granted_by: str
    reason: str
    time: datetime
    sequence: int


class Grants:
    """The fold of RoleGranted / RoleRevoked: which roles each principal holds now (pure, no I/O)."""

    def __init__(self) -> None:
        self.restored = False
        self.following = False  # set by `follow_grants`: until `restored`, a missing role may only be unread
        self.last_seq = 0
        self._held: dict[str, dict[str, GrantEntry]] = {}
        self._roles: dict[str, frozenset[str]] = {}

    def apply(self, message: Message, sequence: int = 0) -> bool:
        """Applies one RoleGranted or RoleRevoked; returns whether it changed anything.

        Raises:
            TypeError: For any other message.
        """
        if isinstance(message, pb.RoleGranted):
            held = self._held.setdefault(message.principal, {})
            if message.role in held:
                changed = False
            else:
                when = message.granted_at.ToDatetime(UTC) if message.HasField("granted_at") else datetime.now(UTC)
                held[message.role] = GrantEntry(
                    message.principal, message.role, message.granted_by, message.reason, when, sequence
                )
                changed = True
        elif isinstance(message, pb.RoleRevoked):
            held = self._held.get(message.principal, {})
            changed = held.pop(message.role, None) is not None
        else:
            raise TypeError(f"not an access event: {type(message).__name__}")
        if changed:
            roles = frozenset(self._held.get(message.principal, {}))
            if roles:
                self._roles[message.principal] = roles
            else:
                self._roles.pop(message.principal, None)
                self._held.pop(message.principal, None)
        self.last_seq = max(self.last_seq, sequence)
        return changed

    def apply_envelope(self, sequence: int, envelope: Envelope) -> None:
        """Applies a stored event (the follower's handler)."""
        kind = pb.RoleGranted if envelope.type == pb.RoleGranted.DESCRIPTOR.full_name else pb.RoleRevoked
        self.apply(envelope.payload(kind), sequence)

    def roles_of(self, principal: Principal) -> frozenset[str]:
        """The roles ``principal`` holds; each of the platform's own services also holds SERVICE_ROLE."""
        roles = self._roles.get(principal.id, _EMPTY)
        if principal.kind == "service" and principal.name in PLATFORM_SERVICES:
            return roles | _SERVICE_ONLY if roles else _SERVICE_ONLY
        return roles

    def holds(self, principal_id: str, role: str) -> bool:
        """Whether ``principal_id`` holds ``role`` by grant (SERVICE_ROLE is never granted)."""
        return role in self._roles.get(principal_id, _EMPTY)

    def entries(self) -> list[GrantEntry]:
        """Every grant in force, ordered by principal then role."""
        return [self._held[p][r] for p in sorted(self._held) for r in sorted(self._held[p])]


def _checked(principal_id: str, role: str) -> None:
    try:
        Principal.parse(principal_id)
    except AuthError as exc:
        raise ValueError(exc.reason) from None
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


async def _change(
    js: JetStreamContext, message: pb.RoleGranted | pb.RoleRevoked, store: EventStore | None, source: str
) -> bool:
    _checked(message.principal, message.role)
    store = store or EventStore(js)
    subject = subjects.access_events(message.principal)
    # Unique per call, stable across this call's retries: racing writers conflict on the expected sequence
    # instead of being taken for duplicates of one another.
    nonce = uuid.uuid4().hex[:16]
    for attempt in range(_ATTEMPTS):
        current = Grants()
        last = 0  # the append expects exactly what was read: a grant racing in after the read fails it
        async for stored in store.read_subject(ACCESS_STREAM, subject):
            current.apply_envelope(stored.seq, stored.envelope)
            last = max(last, stored.seq)
        if not current.apply(message, last + 1):
            return False
        kind = type(message).__name__
        envelope = new_envelope(
            message,
            source=source,
            subject=message.principal,
            event_id=event_id(kind, f"{nonce}.{last}"),
            time=datetime.now(UTC),
            schema_version=SCHEMA_VERSION,
        )
        try:
            await store.append(envelope, subject=subject, expected_last_subject_seq=last)
            return True
        except ConcurrencyError:
            log.info("access change raced another writer (attempt %d); reading again", attempt + 1)
    raise ConcurrencyError(subject, -1, None)


async def grant_role(
    js: JetStreamContext,
    principal_id: str,
    role: str,
    granted_by: str,
    reason: str,
    *,
    store: EventStore | None = None,
    source: str = SOURCE,
) -> bool:
    """Appends RoleGranted unless ``principal_id`` already holds ``role``; returns whether it appended.

    Raises:
        ValueError: If ``principal_id`` is malformed or ``role`` is not one of ROLES.
        ConcurrencyError: If other writers kept changing the principal's grants.
    """
    message = pb.RoleGranted(
        schema_version=SCHEMA_VERSION, principal=principal_id, role=role, granted_by=granted_by, reason=reason
    )
    message.granted_at.FromDatetime(datetime.now(UTC))
    return await _change(js, message, store, source)


async def revoke_role(
    js: JetStreamContext,
    principal_id: str,
    role: str,
    granted_by: str,
    reason: str,
    *,
    store: EventStore | None = None,
    source: str = SOURCE,
) -> bool:
    """Appends RoleRevoked when ``principal_id`` holds ``role``; returns whether it appended (see `grant_role`)."""
    message = pb.RoleRevoked(
        schema_version=SCHEMA_VERSION, principal=principal_id, role=role, granted_by=granted_by, reason=reason
    )
    message.revoked_at.FromDatetime(datetime.now(UTC))
    return await _change(js, message, store, source)


async def follow_grants(
    js: JetStreamContext, grants: Grants, *, store: EventStore | None = None, reader: str = "access"
) -> asyncio.Task[None]:
    """Keeps ``grants`` current from the ACCESS stream; ``grants.restored`` turns True once caught up.

    Returns at once with the running task (cancel it on shutdown). Catching up is retried with backoff until
    the stream can be read; after that the follower reads on through outages by itself.
    """
    store = store or EventStore(js)
    grants.following = True

    async def run() -> None:
        backoff = 0.1
        while True:
            try:
                follower = await follow(
                    js, store, ACCESS_STREAM, subjects.ACCESS_ALL, grants.apply_envelope, grants.last_seq + 1,
                    reader=reader,
                )  # fmt: skip
                break
            except Exception as exc:
                log.warning("cannot read the access grants yet (%s); retrying in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        grants.restored = True
        log.info("access grants restored: %d grants to sequence %d", len(grants.entries()), grants.last_seq)
        try:
            if follower.task is not None:
                await follower.task
        finally:
            with contextlib.suppress(Exception):
                await follower.stop()

    return asyncio.ensure_future(run())
