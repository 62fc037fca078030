"""Triton's admin key: the one secret that opens its model-management APIs (only governance holds it).

Model management is locked with Triton's restricted protocols: given an admin key, the server answers the
model-repository (index, load, unload) and model-config APIs, and the shared-memory, trace and logging
APIs nothing of ours uses, on gRPC and HTTP alike, only to a request carrying it: header
``triton-admin-key`` over HTTP, ``triton-grpc-protocol-triton-admin-key`` over gRPC (Triton prefixes
restricted gRPC headers). Health, metadata, inference and statistics stay open, so scoring and the health
probes (watchdog, readiness, Kubernetes) need no key. Whoever starts Triton creates the key (`write_admin_key_file`,
mode 0600) and hands governance the file's path in ``FRAUD_TRITON_ADMIN_KEY_FILE``. Triton takes the key
only on its command line, so it is visible in /proc/<pid>/cmdline to every local user (Linux shows every
process's argv unless /proc is mounted with hidepid); in Kubernetes it comes from a Secret into the container's
args. It never appears in Triton's log.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path

from fraudshared.config import ConfigError

# Header carrying the admin key over HTTP; over gRPC Triton expects it prefixed "triton-grpc-protocol-".
ADMIN_KEY_HEADER = "triton-admin-key"
GRPC_ADMIN_KEY_HEADER = f"triton-grpc-protocol-{ADMIN_KEY_HEADER}"
ADMIN_KEY_FILE_ENV = "FRAUD_TRITON_ADMIN_KEY_FILE"
# The APIs only governance may call: loading a model runs its code (python backend, inline file content).
# Shared memory (registering host memory regions), trace and logging settings: nothing of ours uses them.
RESTRICTED_APIS = ("model-repository", "model-config", "shared-memory", "trace", "logging")
_ADMIN_KEY = re.compile(r"^[A-Za-z0-9_-]{16,256}$")  # no ',', ':' or '=': Triton's flag syntax uses them


def restricted_api_flags(admin_key: str) -> list[str]:
    """The tritonserver flags restricting `RESTRICTED_APIS` to requests carrying `admin_key` (gRPC and HTTP).

    Raises:
        ValueError: If the key is not 16-256 characters of [A-Za-z0-9_-] (the value is not shown).
    """
    if not _ADMIN_KEY.fullmatch(admin_key):
        raise ValueError("Triton admin key must be 16-256 characters of A-Z a-z 0-9 _ -")
    spec = f"{','.join(RESTRICTED_APIS)}:{ADMIN_KEY_HEADER}={admin_key}"
    return [f"--grpc-restricted-protocol={spec}", f"--http-restricted-api={spec}"]


def new_admin_key() -> str:
    """A fresh random admin key (256 bits, hex)."""
    return secrets.token_hex(32)


def write_admin_key_file(path: Path, admin_key: str | None = None) -> str:
    """Write an admin key (a new one unless given) to `path` with mode 0600, atomically; returns the key."""
    key = admin_key or new_admin_key()
    restricted_api_flags(key)  # validates
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    os.replace(staging, path)
    return key


def read_admin_key_file(path: Path) -> str:
    """The admin key stored in `path` (surrounding whitespace stripped).

    Raises:
        ConfigError: Naming the file (never its content) when it is unreadable or holds no valid key.
    """
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the Triton admin key file {path}: {exc.strerror}") from None
    if not _ADMIN_KEY.fullmatch(key):
        raise ConfigError(f"the Triton admin key file {path} does not hold a key (16-256 of A-Z a-z 0-9 _ -)")
    return key


def admin_key_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The admin key from the file named by FRAUD_TRITON_ADMIN_KEY_FILE; None when the variable is unset.

    Raises:
        ConfigError: When the variable is set but the file is unreadable or holds no valid key.
    """
    path = (os.environ if env is None else env).get(ADMIN_KEY_FILE_ENV, "").strip()
    return read_admin_key_file(Path(path)) if path else None


def admin_headers(admin_key: str | None) -> dict[str, str] | None:
    """The gRPC metadata carrying the admin key (tritonclient's ``headers=``); None without a key."""
    return None if admin_key is None else {GRPC_ADMIN_KEY_HEADER: admin_key}
