"""Sealing personal fields under a subject's key, and reading them back before and after forget."""

from pathlib import Path

import pytest

from fraudshared.privacy import (
    ERASED,
    PrivacyError,
    SqliteSubjectKeyStore,
    SubjectKey,
    open_sealed,
    read_field,
    seal,
)
from fraudshared.privacy.cipher import FORMAT_VERSION, NONCE_BYTES

CARD = "ct_0123456789abcdef0123456789abcdef"
OTHER_CARD = "ct_fedcba9876543210fedcba9876543210"


@pytest.fixture
def store(tmp_path: Path) -> SqliteSubjectKeyStore:
    return SqliteSubjectKeyStore(tmp_path / "subject-keys.db")


def test_round_trip(store: SqliteSubjectKeyStore) -> None:
    key = store.get_or_create(CARD)

    blob = seal(key, "card_token", CARD)

    assert CARD.encode() not in blob
    assert blob[0] == FORMAT_VERSION and len(blob) == 1 + NONCE_BYTES + len(CARD) + 16
    assert open_sealed(key, "card_token", blob) == CARD
    assert read_field(store, key.subject_id, "card_token", blob) == CARD


def test_same_value_seals_differently_each_time(store: SqliteSubjectKeyStore) -> None:
    key = store.get_or_create(CARD)
    assert seal(key, "card_token", CARD) != seal(key, "card_token", CARD)  # random nonce: no equality leak


def test_unicode_and_empty_values(store: SqliteSubjectKeyStore) -> None:
    key = store.get_or_create(CARD)
    for value in ("", "Zoë Ñúñez 東京"):
        assert open_sealed(key, "holder_name", seal(key, "holder_name", value)) == value


def test_a_blob_moved_to_another_field_does_not_open(store: SqliteSubjectKeyStore) -> None:
    key = store.get_or_create(CARD)
    blob = seal(key, "card_token", CARD)

    with pytest.raises(PrivacyError, match="does not authenticate"):
        open_sealed(key, "terminal_id", blob)


def test_a_blob_moved_to_another_subject_does_not_open(store: SqliteSubjectKeyStore) -> None:
    key, other = store.get_or_create(CARD), store.get_or_create(OTHER_CARD)
    blob = seal(key, "card_token", CARD)

    with pytest.raises(PrivacyError, match="does not authenticate"):
        open_sealed(other, "card_token", blob)
    with pytest.raises(PrivacyError, match="does not authenticate"):
        read_field(store, other.subject_id, "card_token", blob)
    # The right key under another subject id fails too: the id is part of the associated data.
    with pytest.raises(PrivacyError, match="does not authenticate"):
        open_sealed(SubjectKey(other.subject_id, key.key), "card_token", blob)


@pytest.mark.parametrize("position", [0, 1, 1 + NONCE_BYTES, -1])
def test_any_flipped_byte_is_a_privacy_error(store: SqliteSubjectKeyStore, position: int) -> None:
    key = store.get_or_create(CARD)
    blob = bytearray(seal(key, "card_token", CARD))
    blob[position] ^= 0x01

    with pytest.raises(PrivacyError) as err:
        read_field(store, key.subject_id, "card_token", bytes(blob))
    assert CARD not in str(err.value) and key.key.hex() not in str(err.value)


def test_a_truncated_blob_is_a_privacy_error(store: SqliteSubjectKeyStore) -> None:
    key = store.get_or_create(CARD)
    with pytest.raises(PrivacyError, match="truncated"):
        open_sealed(key, "card_token", seal(key, "card_token", CARD)[:20])
    with pytest.raises(PrivacyError, match="truncated"):
        open_sealed(key, "card_token", b"")


def test_after_forget_the_field_reads_as_erased(store: SqliteSubjectKeyStore, tmp_path: Path) -> None:
    key = store.get_or_create(CARD)
    kept = store.get_or_create(OTHER_CARD)
    blob, kept_blob = seal(key, "card_token", CARD), seal(kept, "card_token", OTHER_CARD)

    store.forget(CARD)

    for view in (store, SqliteSubjectKeyStore(tmp_path / "subject-keys.db")):
        assert read_field(view, key.subject_id, "card_token", blob) == ERASED
        assert read_field(view, key.subject_id, "card_token", b"anything, even garbage") == ERASED
        assert read_field(view, kept.subject_id, "card_token", kept_blob) == OTHER_CARD


def test_a_subject_neither_known_nor_forgotten_is_a_privacy_error(store: SqliteSubjectKeyStore) -> None:
    with pytest.raises(PrivacyError, match="no record of it being forgotten"):
        read_field(store, "0" * 32, "card_token", b"\x01" + b"\x00" * 40)
