"""OIDC bearer tokens verified against a real JWKS served over HTTP."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fraudshared.config import ConfigError
from fraudshared.identity import AuthError, Principal
from fraudshared.identity.oidc import OidcConfig, OidcVerifier
from tests.fixtures.identity import TestIssuer


@pytest.fixture(scope="module")
def verifier(oidc_issuer: TestIssuer) -> OidcVerifier:
    return OidcVerifier(oidc_issuer.config())


@pytest.mark.parametrize("kid", ["ec-1", "rsa-1"])
def test_a_valid_token_names_its_user(verifier: OidcVerifier, oidc_issuer: TestIssuer, kid: str) -> None:
    assert verifier.verify(oidc_issuer.token("Alice@Bank.example", kid=kid)) == Principal(
        "user", "alice@bank.example", "oidc"
    )


def _forged(oidc_issuer: TestIssuer) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"iss": oidc_issuer.ISSUER, "aud": oidc_issuer.AUDIENCE, "sub": "mallory", "exp": now + 60}
    return jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "ec-1"})


def _cases(oidc_issuer: TestIssuer) -> list[tuple[str, str]]:
    now = int(time.time())
    unsigned = jwt.encode(
        {"iss": oidc_issuer.ISSUER, "aud": oidc_issuer.AUDIENCE, "sub": "eve", "exp": now + 60}, None, algorithm="none"
    )
    unknown_kid = jwt.encode(
        {"iss": oidc_issuer.ISSUER, "aud": oidc_issuer.AUDIENCE, "sub": "bob", "exp": now + 60},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "retired-key"},
    )
    return [
        (oidc_issuer.token("bob", exp=now - 120), "token expired"),
        (oidc_issuer.token("bob", aud="someone-else"), f"token audience is not {oidc_issuer.AUDIENCE}"),
        (oidc_issuer.token("bob", iss="https://evil.test"), f"token issuer is not {oidc_issuer.ISSUER}"),
        (oidc_issuer.token("bob", nbf=now + 3600), "token is not valid yet"),
        (_forged(oidc_issuer), "token signature does not verify"),
        (unknown_kid, "token signing key is not one of the issuer's keys"),
        (unsigned, "token algorithm is not one of RS256, ES256"),
        (jwt.encode({"sub": "x"}, "shared-secret-long-enough-for-hs256!", algorithm="HS256"), "token algorithm"),
        ("not-a-jwt", "token is not a well-formed JWT"),
        (oidc_issuer.token("Not A Name"), "token sub claim is not a valid principal name"),
    ]


def test_each_bad_token_is_refused_with_its_reason(verifier: OidcVerifier, oidc_issuer: TestIssuer) -> None:
    for token, reason in _cases(oidc_issuer):
        with pytest.raises(AuthError) as refused:
            verifier.verify(token)
        assert refused.value.reason.startswith(reason), (reason, refused.value.reason)
        assert token not in refused.value.reason and token not in str(refused.value)


def test_a_token_without_the_principal_claim_is_refused(oidc_issuer: TestIssuer) -> None:
    config = OidcConfig(oidc_issuer.ISSUER, oidc_issuer.AUDIENCE, oidc_issuer.jwks_url, principal_claim="email")
    with pytest.raises(AuthError, match="token lacks the email claim"):
        OidcVerifier(config).verify(oidc_issuer.token("bob"))
    assert OidcVerifier(config).verify(oidc_issuer.token("bob", email="bob@bank.example")).name == "bob@bank.example"


def test_config_from_env() -> None:
    assert OidcConfig.from_env({}) is None
    with pytest.raises(ConfigError, match="FRAUD_OIDC_JWKS_URL"):
        OidcConfig.from_env({"FRAUD_OIDC_ISSUER": "https://i", "FRAUD_OIDC_AUDIENCE": "a"})
    config = OidcConfig.from_env(
        {"FRAUD_OIDC_ISSUER": "https://i", "FRAUD_OIDC_AUDIENCE": "a", "FRAUD_OIDC_JWKS_URL": "http://k"}
    )
    assert config == OidcConfig("https://i", "a", "http://k", "sub", 30)
