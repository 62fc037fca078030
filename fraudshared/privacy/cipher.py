"""Sealing a subject's personal fields with its data key (AES-256-GCM), and reading them back.

A sealed field is ``version (1 byte) | nonce (12 random bytes) | ciphertext and 16-byte tag``. The associated
data binds it to its subject and field (``version | subject_id | 0x00 | field``), so a ciphertext copied to
another subject or another field fails to open. Once the subject is forgotten its key is gone and
`read_field` answers `ERASED`.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fraudshared.privacy.keys import PrivacyError, SubjectKey, SubjectKeyStore

FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
CARD_TOKEN_FIELD = "card_token"  # what TransactionReceived.sealed_card_token is bound to (associated data)
ERASED = "<erased>"


def _associated_data(version: int, subject_id: str, field: str) -> bytes:
    return bytes([version]) + subject_id.encode("utf-8") + b"\x00" + field.encode("utf-8")


def seal(key: SubjectKey, field: str, plaintext: str) -> bytes:
    """Encrypts ``plaintext`` as the value of ``field`` for the subject of ``key``.

    Args:
        key: The subject's id and data key.
        field: Name of the event field (part of the associated data).
        plaintext: The personal value.

    Returns:
        The sealed bytes, to store in place of the value.
    """
    nonce = os.urandom(NONCE_BYTES)
    aad = _associated_data(FORMAT_VERSION, key.subject_id, field)
    return bytes([FORMAT_VERSION]) + nonce + AESGCM(key.key).encrypt(nonce, plaintext.encode("utf-8"), aad)


def open_sealed(key: SubjectKey, field: str, blob: bytes) -> str:
    """Decrypts a value sealed by `seal` for the same subject and field.

    Raises:
        PrivacyError: If the blob is truncated, of an unknown format, tampered with, or sealed for another
            subject, key or field.
    """
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES:
        raise PrivacyError(f"sealed {field!r} of subject {key.subject_id} is truncated ({len(blob)} bytes)")
    version, nonce, ciphertext = blob[0], blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    if version != FORMAT_VERSION:
        raise PrivacyError(f"sealed {field!r} of subject {key.subject_id} has unknown format version {version}")
    try:
        plaintext = AESGCM(key.key).decrypt(nonce, ciphertext, _associated_data(version, key.subject_id, field))
    except InvalidTag:
        raise PrivacyError(
            f"sealed {field!r} of subject {key.subject_id} does not authenticate: corrupted, tampered with, "
            "or sealed for another subject or field"
        ) from None
    return plaintext.decode("utf-8")


def read_field(store: SubjectKeyStore, subject_id: str, field: str, blob: bytes) -> str:
    """The plaintext of a sealed field, or `ERASED` when its subject was forgotten.

    Raises:
        PrivacyError: If the blob does not open under the subject's existing key, or the subject is neither
            known nor recorded as forgotten (a key store that lost keys it should have).
    """
    key = store.by_subject_id(subject_id)
    if key is None:
        if store.is_forgotten(subject_id):
            return ERASED
        raise PrivacyError(f"no key for subject {subject_id} and no record of it being forgotten")
    return open_sealed(key, field, blob)
