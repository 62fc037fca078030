"""Checkpoint canonical bytes, signing with the secrets port's key, verification with rotated and wrong keys."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraudshared.audit import merkle
from fraudshared.audit.checkpoint import Checkpoint, CheckpointError, checkpoint_subject, seal, signature_problem
from fraudshared.audit.keys import (
    SIGNING_SECRET_KEY,
    SIGNING_SECRET_PATH,
    AuditKeyError,
    KeyRing,
    key_id_of,
    load_signing_key,
    signing_key_from_seed_hex,
    verifying_key_from_hex,
)
from fraudshared.secrets import DevSecretStore

SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032 test 1 secret key
PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"  # and its public key
AT = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def hashes(n: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(4, "big")).digest() for i in range(n)]


def test_key_comes_from_the_seed_and_its_id_is_the_public_key_hash() -> None:
    key = signing_key_from_seed_hex(SEED, version=3)
    assert key.public_key.hex() == PUBLIC
    assert key.key_id == hashlib.sha256(bytes.fromhex(PUBLIC)).hexdigest()[:16] == key_id_of(key.public_key)
    assert key.version == 3
    with pytest.raises(AuditKeyError, match="not the hex of a 32-byte seed"):
        signing_key_from_seed_hex("abcd", version=1)
    with pytest.raises(AuditKeyError, match="64 hex digits"):
        verifying_key_from_hex("zz")


def test_canonical_bytes_are_spelled_out_exactly() -> None:
    key = signing_key_from_seed_hex(SEED, version=2)
    cp = seal("TRANSACTIONS", 1, hashes(3), None, key, AT)
    prefixes = b"".join(h[:8] for h in hashes(3))
    assert cp.canonical_bytes() == (
        b"fraud-audit-checkpoint-v1\n"
        b"stream=TRANSACTIONS\n"
        b"first_sequence=1\n"
        b"last_sequence=3\n"
        + f"merkle_root={merkle.root(hashes(3)).hex()}\n".encode()
        + b"previous_checkpoint_hash=\n"
        + f"event_hash_prefixes_sha256={hashlib.sha256(prefixes).hexdigest()}\n".encode()
        + f"key_id={key.key_id}\n".encode()
        + b"key_version=2\n"
        b"sealed_at=2026-11-26T12:00:00.123456Z\n"
    )
    assert cp.checkpoint_hash() == hashlib.sha256(cp.canonical_bytes()).digest()
    assert cp.event_hash_prefixes == prefixes
    assert len(cp.signature) == 64


def test_checkpoints_chain_and_round_trip_through_the_event() -> None:
    key = signing_key_from_seed_hex(SEED, version=1)
    first = seal("FEATURES", 1, hashes(4), None, key, AT)
    second = seal("FEATURES", 5, hashes(2, b"x"), first, key, AT)
    assert second.previous_checkpoint_hash == first.checkpoint_hash()
    assert (second.first_sequence, second.last_sequence) == (5, 6)
    envelope = second.to_envelope()
    assert envelope.id == "AuditCheckpointSealed:FEATURES-6"
    assert envelope.type == "fraud.events.v1.AuditCheckpointSealed"
    assert Checkpoint.from_envelope(envelope) == second
    assert checkpoint_subject("FEATURES") == "fraud.audit.checkpoints.FEATURES"
    with pytest.raises(CheckpointError, match="does not follow"):
        seal("FEATURES", 9, hashes(1), second, key, AT)
    with pytest.raises(CheckpointError, match="at least one event"):
        seal("FEATURES", 7, [], second, key, AT)


def test_signature_verifies_and_any_change_breaks_it() -> None:
    key = signing_key_from_seed_hex(SEED, version=1)
    ring = KeyRing([key.verifying()])
    cp = seal("LABELS", 1, hashes(5), None, key, AT)
    assert signature_problem(cp, ring) is None
    for changed in (
        replace(cp, merkle_root=merkle.leaf_hash(b"other")),
        replace(cp, last_sequence=4, event_hash_prefixes=cp.event_hash_prefixes[:-8]),
        replace(cp, sealed_at=AT.replace(microsecond=0)),
        replace(cp, previous_checkpoint_hash=b"\x00" * 32),
        replace(cp, event_hash_prefixes=b"\x00" * 40),
    ):
        assert signature_problem(changed, ring) == f"signature does not verify with key {key.key_id}"


def test_a_wrong_key_is_named_not_trusted() -> None:
    key = signing_key_from_seed_hex(SEED, version=1)
    other = signing_key_from_seed_hex("11" * 32, version=1)
    cp = seal("MODELS", 1, hashes(2), None, other, AT)
    problem = signature_problem(cp, KeyRing([key.verifying()]))
    assert problem is not None and f"signed with key {other.key_id}" in problem and key.key_id in problem
    # A forger who puts the trusted key id on his own signature is caught by the signature itself.
    forged = replace(cp, key_id=key.key_id)
    assert signature_problem(forged, KeyRing([key.verifying()])) == f"signature does not verify with key {key.key_id}"
    # A public key given by hand verifies (without a version to compare).
    assert signature_problem(cp, KeyRing([verifying_key_from_hex(other.public_key.hex())])) is None


def test_rotated_key_versions_all_verify_and_versions_must_match(tmp_path: Path) -> None:
    store = DevSecretStore(tmp_path / "secrets.dev.json")
    v1 = load_signing_key(store)  # generated by the dev store (name ends in _key)
    assert v1.version == 1
    old = seal("MONITOR", 1, hashes(3), None, v1, AT)
    store.put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "22" * 32})
    v2 = load_signing_key(store)
    assert (v2.version, v2.key_id) == (2, signing_key_from_seed_hex("22" * 32, 2).key_id)
    new = seal("MONITOR", 4, hashes(3, b"n"), old, v2, AT)

    ring = KeyRing.from_secrets(DevSecretStore(tmp_path / "secrets.dev.json"))
    assert len(ring) == 2
    assert signature_problem(old, ring) is None
    assert signature_problem(new, ring) is None
    # Only the latest key: the old checkpoint's key is unknown, and the message names it.
    only_latest = KeyRing([v2.verifying()])
    assert f"signed with key {v1.key_id} (version 1)" in (signature_problem(old, only_latest) or "")
    # A checkpoint that lies about its key version is refused.
    lying = seal("MONITOR", 1, hashes(3), None, replace(v1, version=7), AT)
    assert "claims key version 7" in (signature_problem(lying, ring) or "")


def test_a_malformed_secret_is_a_clear_error(tmp_path: Path) -> None:
    store = DevSecretStore(tmp_path / "secrets.dev.json")
    store.put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "not hex"})
    with pytest.raises(AuditKeyError, match="audit-signing/ed25519_private_key"):
        load_signing_key(store)
    with pytest.raises(AuditKeyError, match="cannot read"):
        load_signing_key(store, version=5)


@pytest.mark.parametrize(
    "bad",
    [
        {"first_sequence": 0},
        {"last_sequence": 0},
        {"merkle_root": b"short"},
        {"previous_checkpoint_hash": b"x"},
        {"event_hash_prefixes": b"1234567"},
        {"key_id": "KEY"},
        {"stream": "a.b"},
    ],
)
def test_malformed_checkpoints_are_refused(bad: dict[str, object]) -> None:
    good = seal("PREDICTIONS", 1, hashes(1), None, signing_key_from_seed_hex(SEED, 1), AT)
    with pytest.raises(CheckpointError):
        replace(good, **bad)
