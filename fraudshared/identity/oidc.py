"""OIDC bearer tokens: verify a JWT against the issuer's published keys (JWKS) and name its user.

Only asymmetric signatures (RS256, ES256) are accepted, so a token can never be "signed" with a shared
secret or with ``alg: none``. Every failure is an `AuthError` whose reason names what was wrong and never
contains the token or any of its claims' values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from fraudshared.config import ConfigError
from fraudshared.identity.principal import AuthError, Principal

ALGORITHMS = ("RS256", "ES256")
_JWKS_CACHE_S = 300


@dataclass(frozen=True)
class OidcConfig:
    """Where tokens come from and whom they must be for.

    Attributes:
        issuer: Expected ``iss`` claim.
        audience: Expected ``aud`` claim (our platform's client id).
        jwks_url: The issuer's JSON Web Key Set URL.
        principal_claim: Claim naming the user (``sub``; ``email`` or ``preferred_username`` are common).
        leeway_s: Clock skew tolerated on ``exp`` / ``nbf`` / ``iat``.
    """

    issuer: str
    audience: str
    jwks_url: str
    principal_claim: str = "sub"
    leeway_s: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OidcConfig | None:
        """None unless FRAUD_OIDC_ISSUER is set; then FRAUD_OIDC_AUDIENCE and FRAUD_OIDC_JWKS_URL are required.

        Raises:
            ConfigError: Naming a required variable that is missing.
        """
        source = os.environ if env is None else env

        def get(name: str) -> str:
            return source.get(name, "").strip()

        issuer = get("FRAUD_OIDC_ISSUER")
        if not issuer:
            return None
        for required in ("FRAUD_OIDC_AUDIENCE", "FRAUD_OIDC_JWKS_URL"):
            if not get(required):
                raise ConfigError(f"{required} is required when FRAUD_OIDC_ISSUER is set")
        return cls(
            issuer=issuer,
            audience=get("FRAUD_OIDC_AUDIENCE"),
            jwks_url=get("FRAUD_OIDC_JWKS_URL"),
            principal_claim=get("FRAUD_OIDC_PRINCIPAL_CLAIM") or "sub",
        )


class OidcVerifier:
    """Verifies bearer tokens; keys are fetched from the JWKS URL and cached (refetched for an unknown kid)."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._jwks = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=_JWKS_CACHE_S, timeout=5)

    def verify(self, token: str) -> Principal:
        """Verifies ``token`` and returns its user principal (method "oidc").

        Raises:
            AuthError: With a reason safe to show the caller.
        """
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("token is not a well-formed JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(f"token algorithm is not one of {', '.join(ALGORITHMS)}")
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise AuthError("cannot fetch the token issuer's keys") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError):
            raise AuthError("token signing key is not one of the issuer's keys") from None
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[header["alg"]],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_s,
                options={"require": ["exp", "iss", "aud", config.principal_claim]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {config.audience}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {config.issuer}") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim} claim") from None
        except jwt.InvalidTokenError:
            raise AuthError("token is invalid") from None
        name = claims[config.principal_claim]
        if not isinstance(name, str):
            raise AuthError(f"token {config.principal_claim} claim is not a string")
        try:
            return Principal("user", name.lower(), "oidc")
        except AuthError:
            raise AuthError(f"token {config.principal_claim} claim is not a valid principal name") from None
