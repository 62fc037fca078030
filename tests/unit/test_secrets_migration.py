"""The former shared var/secrets.dev.json is split into per-service files on first start, never losing a key."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from fraudshared.secrets import SecretsError, secret_store_from_env

LEGACY: dict[str, Any] = {
    "pan-tokenization": [{"hmac_key": "11" * 32}, {"hmac_key": "22" * 32}],
    "audit-signing": {"ed25519_private_key": "33" * 32},
    "governance-db": {"database_url": "postgresql+psycopg://fraud@db/fraud"},
    "hand-written": {"note_key": "44" * 32},
}


def write_legacy(var_dir: Path, data: dict[str, Any] = LEGACY) -> Path:
    var_dir.mkdir(parents=True, exist_ok=True)
    legacy = var_dir / "secrets.dev.json"
    legacy.write_text(json.dumps(data))
    legacy.chmod(0o600)
    return legacy


def read(var_dir: Path, service: str) -> dict[str, Any]:
    file = var_dir / "secrets" / f"{service}.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    return json.loads(file.read_text())


def test_the_shared_file_is_split_by_owner_with_every_version(tmp_path: Path) -> None:
    legacy = write_legacy(tmp_path)

    ingest = secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)}, service="ingest")

    assert not legacy.exists()
    assert read(tmp_path, "ingest") == {"pan-tokenization": LEGACY["pan-tokenization"]}
    assert read(tmp_path, "governance") == {k: LEGACY[k] for k in ("audit-signing", "governance-db")}
    assert read(tmp_path, "unassigned") == {"hand-written": LEGACY["hand-written"]}  # kept, owned by nobody
    assert ingest.get_version("pan-tokenization", "hmac_key") == ("22" * 32, 2)
    assert ingest.get_version("pan-tokenization", "hmac_key", 1) == ("11" * 32, 1)
    # A second start finds nothing to migrate and changes nothing.
    secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)}, service="governance")
    assert read(tmp_path, "ingest") == {"pan-tokenization": LEGACY["pan-tokenization"]}


def test_a_path_already_in_the_owners_file_with_other_values_keeps_both(tmp_path: Path) -> None:
    secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)}, service="governance").get(
        "audit-signing", "ed25519_private_key"
    )  # generated: the per-service file now has its own audit-signing
    before = read(tmp_path, "governance")["audit-signing"]
    write_legacy(tmp_path)

    secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)}, service="governance")

    assert read(tmp_path, "governance")["audit-signing"] == before
    assert read(tmp_path, "unassigned")["audit-signing@secrets.dev.json"] == LEGACY["audit-signing"]


def test_a_corrupt_shared_file_is_kept_and_the_error_echoes_nothing(tmp_path: Path) -> None:
    legacy = tmp_path / "secrets.dev.json"
    legacy.write_text('{"pan-tokenization": {"hmac_key": "hunter2"')
    with pytest.raises(SecretsError) as err:
        secret_store_from_env({"FRAUD_VAR_DIR": str(tmp_path)}, service="ingest")
    assert "hunter2" not in str(err.value) and legacy.exists()


def test_services_starting_at_once_migrate_once_and_lose_nothing(tmp_path: Path) -> None:
    write_legacy(tmp_path)
    ctx = multiprocessing.get_context("fork")
    services = ["ingest", "governance", "features", "scoring", "monitor", "ingest", "governance", "ingest"]
    procs = [ctx.Process(target=_start, args=(str(tmp_path), service)) for service in services]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0

    assert not (tmp_path / "secrets.dev.json").exists()
    assert read(tmp_path, "ingest") == {"pan-tokenization": LEGACY["pan-tokenization"]}
    assert read(tmp_path, "governance") == {k: LEGACY[k] for k in ("audit-signing", "governance-db")}
    assert read(tmp_path, "unassigned") == {"hand-written": LEGACY["hand-written"]}


def _start(var_dir: str, service: str) -> None:
    secret_store_from_env({"FRAUD_VAR_DIR": var_dir}, service=service)


def test_a_shared_file_written_again_after_the_split_is_merged_again_without_losing_anything(tmp_path: Path) -> None:
    env = {"FRAUD_VAR_DIR": str(tmp_path)}
    write_legacy(tmp_path)
    secret_store_from_env(env, service="governance")
    seeds = ["55" * 32, "66" * 32]
    for seed in seeds:  # an old-style writer (a script, an old test helper) writes the shared file again
        write_legacy(tmp_path, {"audit-signing": {"ed25519_private_key": seed}})
        secret_store_from_env(env, service="governance")

    assert read(tmp_path, "governance")["audit-signing"] == LEGACY["audit-signing"]
    kept = read(tmp_path, "unassigned")
    assert kept["audit-signing@secrets.dev.json"] == {"ed25519_private_key": seeds[0]}
    assert kept["audit-signing@secrets.dev.json.2"] == {"ed25519_private_key": seeds[1]}
    assert not (tmp_path / "secrets.dev.json").exists()
