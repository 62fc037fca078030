"""Who is calling: a principal ("user:<name>" or "service:<name>") and the handler's current one.

Certificates carry the principal as a SPIFFE-style URI SAN (``spiffe://<trust domain>/user/<name>``);
OIDC tokens carry a user name in a claim. Either way the handler sees one `Principal`, read with
`current_principal()` (set by the auth interceptor, or by `acting_as` for in-process work and tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, cast

DEFAULT_TRUST_DOMAIN = "fraud.local"
KINDS = ("user", "service")
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,127}")
_TRUST_DOMAIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,254}")
_METHODS = frozenset({"mtls", "oidc", "internal"})


class AuthError(Exception):
    """Authentication failed; `reason` is safe to show the caller (it never contains a token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoPrincipal(RuntimeError):
    """`current_principal()` was called outside an authenticated call or `acting_as` block."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        kind: "user" (a person, by certificate or OIDC token) or "service" (a platform service).
        name: Lower-case name, ``[a-z0-9][a-z0-9._@-]{0,127}``.
        method: How it was authenticated: "mtls", "oidc" or "internal".
    """

    kind: Literal["user", "service"]
    name: str
    method: str = "mtls"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AuthError(f"principal kind must be one of {', '.join(KINDS)}")
        if not _NAME.fullmatch(self.name):
            raise AuthError("principal name must match [a-z0-9][a-z0-9._@-]{0,127}")
        if self.method not in _METHODS:
            raise AuthError(f"unknown authentication method {self.method!r}")

    @property
    def id(self) -> str:
        """The principal id, e.g. ``user:alice``."""
        return f"{self.kind}:{self.name}"

    def spiffe_id(self, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
        """The SPIFFE-style URI a certificate for this principal carries."""
        return f"spiffe://{trust_domain}/{self.kind}/{self.name}"

    @classmethod
    def from_spiffe_id(cls, uri: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> Principal:
        """Parses ``spiffe://<trust domain>/<kind>/<name>``.

        Raises:
            AuthError: If the URI is malformed or names another trust domain.
        """
        prefix = f"spiffe://{trust_domain}/"
        if not uri.startswith(prefix):
            raise AuthError(f"certificate identity is not in trust domain {trust_domain}")
        kind, sep, name = uri[len(prefix) :].partition("/")
        if not sep or kind not in KINDS:
            raise AuthError("certificate identity must be spiffe://<domain>/user/<name> or /service/<name>")
        return cls(cast(Literal["user", "service"], kind), name, "mtls")

    @classmethod
    def parse(cls, principal_id: str, method: str = "internal") -> Principal:
        """Parses a principal id such as ``user:alice``.

        Raises:
            AuthError: If the id is malformed.
        """
        kind, sep, name = principal_id.partition(":")
        if not sep or kind not in KINDS:
            raise AuthError("principal must be user:<name> or service:<name>")
        return cls(cast(Literal["user", "service"], kind), name, method)


def valid_trust_domain(trust_domain: str) -> bool:
    """True when ``trust_domain`` is a plausible lower-case DNS-like name."""
    return bool(_TRUST_DOMAIN.fullmatch(trust_domain))


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("fraud_principal", default=None)


def current_principal() -> Principal:
    """The principal the current call runs for.

    Raises:
        NoPrincipal: Outside an authenticated handler or `acting_as` block.
    """
    principal = _current.get()
    if principal is None:
        raise NoPrincipal("no authenticated principal in this context")
    return principal


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    """Sets the current principal (the interceptor's hook); returns the token for `reset_principal`."""
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    """Restores the principal that was current before `set_principal`."""
    _current.reset(token)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Runs the block on ``principal``'s behalf (tests, in-process work)."""
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)
