"""Bearer-token callers on a `fraudctl up` runtime: the token port is planned, recorded and dialled.

A real OIDC issuer (its JWKS over loopback HTTP), the real nats-server and governance under supervisord, and
the real CLI with FRAUD_TOKEN_FILE: no certificate on the caller's side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudctl.procfile import TOKEN_KIND, load_plan
from tests.fixtures.identity import TestIssuer

pytestmark = pytest.mark.integration

# What a developer's shell may carry: the test chooses each call's credential and the OIDC settings itself.
_NOT_INHERITED = ("FRAUD_CREDENTIAL", "FRAUD_TOKEN_FILE")


def fraudctl(var: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``fraudctl ARGS --var-dir VAR`` with the test's environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED and not k.startswith("FRAUD_OIDC")}
    environ = {**base, "COLUMNS": "200", **(env or {})}
    argv = [sys.executable, "-m", "fraudctl", *args, "--var-dir", str(var)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=environ, check=False)


def one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The single error line of a failed command, which names each of ``needles``."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def var(tmp_path: Path) -> Iterator[Path]:
    var = tmp_path / "var"
    yield var
    fraudctl(var, "down")


def oidc_env(issuer: TestIssuer) -> dict[str, str]:
    return {
        "FRAUD_OIDC_ISSUER": issuer.ISSUER,
        "FRAUD_OIDC_AUDIENCE": issuer.AUDIENCE,
        "FRAUD_OIDC_JWKS_URL": issuer.jwks_url,
    }


def as_token(var: Path, tmp_path: Path, token: str, label: str) -> dict[str, str]:
    """The environment of a caller holding ``token`` (in a file) and trusting the runtime's CA."""
    token_file = tmp_path / f"{label}.jwt"
    token_file.write_text(token)
    return {"FRAUD_TOKEN_FILE": str(token_file), "FRAUD_TLS_CA_FILE": str(var / "pki" / "ca.pem")}


def test_a_token_caller_reaches_a_runtime_started_with_oidc(var: Path, tmp_path: Path, oidc_issuer: TestIssuer) -> None:
    started = fraudctl(var, "up", "--only", "nats,governance", env=oidc_env(oidc_issuer))
    assert started.returncode == 0, started.stdout + started.stderr
    plan = load_plan(var)
    assert plan is not None
    governance = plan.components["governance"]
    token_port = governance.ports[TOKEN_KIND]
    assert governance.env["FRAUD_GOVERNANCE_GRPC_TOKEN_PORT"] == str(token_port) != str(governance.port)
    assert plan.env["FRAUD_OIDC_JWKS_URL"] == oidc_issuer.jwks_url
    assert f"bearer-token (OIDC) ports: governance 127.0.0.1:{token_port}" in started.stdout
    assert f"governance 127.0.0.1:{token_port}" in fraudctl(var, "status").stdout

    granted = fraudctl(var, "--as", "admin", "access", "grant", "user:oidc-auditor", "auditor", "--reason", "r")
    assert granted.returncode == 0, granted.stdout + granted.stderr
    good = oidc_issuer.token("oidc-auditor")
    listed = fraudctl(var, "model", "list", env=as_token(var, tmp_path, good, "good"))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "no model versions registered" in listed.stdout

    now = int(time.time())
    refused = {
        "expired": (oidc_issuer.token("oidc-auditor", exp=now - 3600, iat=now - 7200), "token expired"),
        "audience": (oidc_issuer.token("oidc-auditor", aud="another-app"), "token audience is not fraud-platform"),
        "ungranted": (oidc_issuer.token("oidc-nobody"), "user:oidc-nobody may not call ListModels"),
    }
    tokens = [good]
    for label, (token, reason) in refused.items():
        tokens.append(token)
        result = fraudctl(var, "model", "list", env=as_token(var, tmp_path, token, label))
        code = "PERMISSION_DENIED" if label == "ungranted" else "UNAUTHENTICATED"
        line = one_line(result, code, reason)
        assert token not in line

    fraudctl(var, "down")
    # No token, nor its signature, in any log or run file the runtime wrote.
    for path in [p for p in var.rglob("*") if p.is_file() and p.suffix in (".log", ".json", ".conf")]:
        text = path.read_text(errors="replace")
        for token in tokens:
            assert token not in text and token.rsplit(".", 1)[1] not in text, f"a token in {path}"


def test_a_token_caller_of_a_runtime_without_oidc_is_told_in_one_line(var: Path, tmp_path: Path) -> None:
    started = fraudctl(var, "up", "--only", "nats,governance")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "bearer-token" not in started.stdout
    plan = load_plan(var)
    assert plan is not None and TOKEN_KIND not in plan.components["governance"].ports
    result = fraudctl(var, "model", "list", env=as_token(var, tmp_path, "header.payload.signature", "any"))
    one_line(result, "this platform accepts no bearer tokens: start it with FRAUD_OIDC_ISSUER")
