"""The checkpoint signing key (Ed25519, from the secrets port) and the key ring verifiers use.

The secret ``audit-signing`` holds ``ed25519_private_key``: the hex of a 32-byte Ed25519 seed (the dev store
generates one on first use, as it does for every key whose name ends in ``_key``). A key is named by its
*key id*, the first 16 hex digits of SHA-256 over the raw 32-byte public key, and by its version in the
secrets store. Rotation writes a new version; old versions stay readable, so old checkpoints still verify.
The secret is governance's alone (Vault ``<mount>/fraud/governance/audit-signing``, or the development file
``var/secrets/governance.json``); no other service's store can read it (`fraudshared.secrets.SERVICE_SECRETS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fraudshared.secrets import SecretsError, SecretStore

SIGNING_SECRET_OWNER = "governance"  # the notary signs inside governance; no other service reads the key
SIGNING_SECRET_PATH = "audit-signing"
SIGNING_SECRET_KEY = "ed25519_private_key"
SEED_BYTES = 32


class AuditKeyError(Exception):
    """A signing or verifying key is missing or malformed (the message never contains key material)."""


def key_id_of(public_key: bytes) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """A private signing key with its id and secrets-store version."""

    private: Ed25519PrivateKey
    public_key: bytes
    key_id: str
    version: int

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over ``message``."""
        return self.private.sign(message)

    def verifying(self) -> VerifyingKey:
        """The matching public key."""
        return VerifyingKey(self.public_key, self.key_id, self.version)


@dataclass(frozen=True)
class VerifyingKey:
    """A public key; ``version`` is None when it was given by hand rather than read from the secrets store."""

    public_key: bytes
    key_id: str
    version: int | None

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def signing_key_from_seed_hex(seed_hex: str, version: int) -> SigningKey:
    """Builds a signing key from the hex of a 32-byte seed.

    Raises:
        AuditKeyError: If the value is not 64 hex digits.
    """
    try:
        seed = bytes.fromhex(seed_hex.strip())
    except ValueError:
        seed = b""
    if len(seed) != SEED_BYTES:
        raise AuditKeyError(
            f"secret {SIGNING_SECRET_PATH}/{SIGNING_SECRET_KEY} (version {version}) is not the hex of a 32-byte seed"
        )
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SigningKey(private, public, key_id_of(public), version)


def verifying_key_from_hex(public_hex: str) -> VerifyingKey:
    """A public key given as 64 hex digits (``--public-key``).

    Raises:
        AuditKeyError: If it is not 32 bytes of hex.
    """
    try:
        public = bytes.fromhex(public_hex.strip())
    except ValueError:
        public = b""
    if len(public) != SEED_BYTES:
        raise AuditKeyError(f"public key {public_hex[:20]!r}... is not 64 hex digits (a raw Ed25519 public key)")
    return VerifyingKey(public, key_id_of(public), None)


def load_signing_key(secrets: SecretStore, version: int | None = None) -> SigningKey:
    """The signing key from the secrets port: the latest version unless ``version`` is given.

    Raises:
        AuditKeyError: If the secret cannot be read or is malformed.
    """
    try:
        value, number = secrets.get_version(SIGNING_SECRET_PATH, SIGNING_SECRET_KEY, version)
    except SecretsError as exc:
        raise AuditKeyError(f"cannot read the audit signing key: {exc}") from None
    return signing_key_from_seed_hex(value, number)


class KeyRing:
    """Public keys by key id: every version of the signing key, plus any given by hand."""

    def __init__(self, keys: Iterable[VerifyingKey] = ()) -> None:
        self._keys: dict[str, VerifyingKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: VerifyingKey) -> None:
        self._keys.setdefault(key.key_id, key)

    def get(self, key_id: str) -> VerifyingKey | None:
        return self._keys.get(key_id)

    def __len__(self) -> int:
        return len(self._keys)

    def describe(self) -> str:
        """One line for humans: key ids with versions."""
        return ", ".join(
            f"{k.key_id} (v{k.version})" if k.version is not None else f"{k.key_id} (given)"
            for k in self._keys.values()
        )

    @classmethod
    def from_secrets(cls, secrets: SecretStore) -> KeyRing:
        """Every readable version of the signing key, newest first (a destroyed version is skipped).

        Raises:
            AuditKeyError: If not even the latest version can be read.
        """
        latest = load_signing_key(secrets)
        ring = cls([latest.verifying()])
        for version in range(latest.version - 1, 0, -1):
            try:
                ring.add(load_signing_key(secrets, version).verifying())
            except AuditKeyError:
                continue
        return ring
