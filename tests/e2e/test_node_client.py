"""A gRPC client in another language: Node.js (@grpc/grpc-js, clients/node/score.js) scores a transaction
over mutual TLS with a development credential, exactly as the README tells a caller to; without a client
certificate, or as a principal without the scorer role, it is refused."""

from __future__ import annotations

import asyncio
import json
import shutil
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from tests.fixtures.identity import credential
from tests.fixtures.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "node"


async def _node(address: str, credential_dir: Path, tx: str) -> tuple[int, dict[str, object]]:
    """Runs the client as a subprocess without blocking the loop the in-process services answer on."""
    node = shutil.which("node")
    assert node, "node is not on PATH: the Node.js client test needs it (Debian/NodeSource nodejs)"
    assert (CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run `make node-client` (npm ci) first"
    args = ["score.js", "--address", address, "--credential", str(credential_dir), "--transaction-id", tx]
    process = await asyncio.create_subprocess_exec(node, *args, cwd=CLIENT, stdout=PIPE, stderr=PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stdout.decode().strip().splitlines()
    assert lines, f"no output from the Node.js client: {stderr.decode()[-500:]}"
    return process.returncode or 0, json.loads(lines[-1])


async def test_node_client_scores_a_transaction_as_the_scorer(platform: Platform) -> None:
    scorer = credential("dev-scorer").files
    assert scorer is not None
    rc, answer = await _node(platform.address("ingest"), scorer.cert.parent, "node-e2e-1")
    assert rc == 0, answer
    assert answer["transaction_id"] == "node-e2e-1"
    assert answer["decision"] in {"DECISION_APPROVE", "DECISION_REVIEW", "DECISION_DECLINE"}


async def test_node_client_without_the_role_or_a_certificate_is_refused(platform: Platform, tmp_path: Path) -> None:
    auditor = credential("dev-auditor").files
    assert auditor is not None
    rc, answer = await _node(platform.address("ingest"), auditor.cert.parent, "node-e2e-2")
    assert (rc, answer["code"]) == (1, "PERMISSION_DENIED")
    assert "user:dev-auditor may not call ScoreTransaction" in str(answer["details"])
    # The CA only, no certificate of its own: the TLS handshake fails, nothing reaches ingest.
    (tmp_path / "ca.pem").write_bytes(auditor.ca.read_bytes())
    rc, answer = await _node(platform.address("ingest"), tmp_path, "node-e2e-3")
    assert (rc, answer["code"]) == (1, "UNAVAILABLE")
