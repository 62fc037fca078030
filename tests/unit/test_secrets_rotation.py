"""Key rotation: a new version is used for new tokens and signatures, old ones still resolve by their version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fraudshared.audit.checkpoint import seal, signature_problem
from fraudshared.audit.keys import SIGNING_SECRET_KEY, SIGNING_SECRET_PATH, KeyRing, load_signing_key
from fraudshared.pan_token import TOKEN_KEY_NAME, TOKEN_KEY_PATH, tokenize_pan
from fraudshared.secrets import ScopedSecretStore, all_versions, secret_store_from_env
from tests.fixtures.fake_vault import ROOT_TOKEN, FakeVault, module_policy

PAN = "4111111111111111"
AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HASHES = [bytes([i]) * 32 for i in range(3)]


def rotate_pan_key_and_check(ingest: ScopedSecretStore, rotate: ScopedSecretStore) -> None:
    old_hex, old_version = ingest.get_version(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    old_token = tokenize_pan(bytes.fromhex(old_hex), PAN)

    new_version = rotate.put(TOKEN_KEY_PATH, {TOKEN_KEY_NAME: "ee" * 32})

    new_hex, version = ingest.get_version(TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    assert (version, new_version) == (old_version + 1, old_version + 1)  # new tokens use the new version
    assert tokenize_pan(bytes.fromhex(new_hex), PAN) != old_token
    keys = all_versions(ingest, TOKEN_KEY_PATH, TOKEN_KEY_NAME)
    assert set(keys) == {old_version, new_version}
    # An event recorded token_key_version=old_version: that version's key still gives the same card token.
    assert tokenize_pan(bytes.fromhex(keys[old_version]), PAN) == old_token


def test_pan_key_rotation_in_the_development_file(tmp_path: Path) -> None:
    env = {"FRAUD_VAR_DIR": str(tmp_path)}
    ingest = secret_store_from_env(env, service="ingest")
    assert isinstance(ingest, ScopedSecretStore)
    rotate_pan_key_and_check(ingest, ingest)


def test_pan_key_rotation_in_vault_read_by_ingests_role() -> None:
    with FakeVault() as vault:
        vault.add_approle("ingest-role", "ingest-secret", policy=module_policy("ingest"))
        vault.put("secret", "fraud/ingest/pan-tokenization", {"hmac_key": "dd" * 32})
        base = {"VAULT_ADDR": vault.addr, "FRAUD_SECRETS_CACHE_TTL_S": "0"}
        ingest = secret_store_from_env(
            {**base, "VAULT_ROLE_ID": "ingest-role", "VAULT_SECRET_ID": "ingest-secret"}, service="ingest"
        )
        operator = secret_store_from_env({**base, "VAULT_TOKEN": ROOT_TOKEN}, service="ingest")
        assert isinstance(ingest, ScopedSecretStore) and isinstance(operator, ScopedSecretStore)
        rotate_pan_key_and_check(ingest, operator)


def test_signing_key_rotation_in_vault_old_checkpoints_verify_by_version() -> None:
    with FakeVault() as vault:
        vault.add_approle("governance-role", "governance-secret", policy=module_policy("governance"))
        vault.put("secret", "fraud/governance/audit-signing", {SIGNING_SECRET_KEY: "aa" * 32})
        base = {"VAULT_ADDR": vault.addr, "FRAUD_SECRETS_CACHE_TTL_S": "0"}
        governance = secret_store_from_env(
            {**base, "VAULT_ROLE_ID": "governance-role", "VAULT_SECRET_ID": "governance-secret"}, service="governance"
        )
        v1 = load_signing_key(governance)
        old = seal("MODELS", 1, HASHES, None, v1, AT)

        operator = secret_store_from_env({**base, "VAULT_TOKEN": ROOT_TOKEN}, service="governance")
        assert isinstance(operator, ScopedSecretStore)
        operator.put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "bb" * 32})

        v2 = load_signing_key(governance)
        assert (v1.version, v2.version) == (1, 2) and v1.key_id != v2.key_id
        new = seal("MODELS", 4, HASHES, old, v2, AT)
        assert new.key_version == 2  # new checkpoints are signed with the new version
        ring = KeyRing.from_secrets(governance)
        assert signature_problem(old, ring) is None and signature_problem(new, ring) is None
        assert load_signing_key(governance, version=1).key_id == v1.key_id
