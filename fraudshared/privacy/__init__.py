"""Crypto-shredding: personal event fields sealed under a per-card key that `forget` destroys.

Events carry a random ``subject_id`` in clear and personal fields sealed with the subject's data key; once
the key store forgets the card, those fields read as `ERASED` and the id links to nobody. See docs/privacy.md.
"""

from fraudshared.privacy.cipher import CARD_TOKEN_FIELD, ERASED, open_sealed, read_field, seal
from fraudshared.privacy.keys import (
    PrivacyError,
    SqliteSubjectKeyStore,
    SubjectKey,
    SubjectKeyStore,
)
from fraudshared.privacy.vault_keys import VaultSubjectKeyStore, subject_key_store_from_env

__all__ = [
    "CARD_TOKEN_FIELD",
    "ERASED",
    "PrivacyError",
    "SqliteSubjectKeyStore",
    "SubjectKey",
    "SubjectKeyStore",
    "VaultSubjectKeyStore",
    "open_sealed",
    "read_field",
    "seal",
    "subject_key_store_from_env",
]
