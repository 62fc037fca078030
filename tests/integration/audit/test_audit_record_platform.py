"""Audit runs on the platform's NATS (TLS, per-principal users): the auditor only reads, governance records.

Streams and grants are made by ``service:bootstrap`` as `fraudctl up` does, then governance starts from its own
bootstrap with its own certificate. ``fraudctl audit verify`` reads over TLS as the development auditor and
records its run through governance; nats-server logs every refused publish, so no violation in its log proves
the recording needs no AUDIT permission for the auditor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import nats
import pytest
from nats.aio.client import Client

from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudshared.events.envelope import from_nats
from fraudshared.events.streams import ensure_streams
from fraudshared.identity import ssl_context
from fraudshared.nats_server import NatsServer
from fraudshared.service import start_in_process
from tests.fixtures.identity import grant_dev_roles, session_pki
from tests.integration.audit.audit_support import Cli

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def secure_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server_files = session_pki().files("service:nats", server=True)
    with NatsServer(tmp_path_factory.mktemp("audit-secure-nats") / "jetstream", secure=server_files) as server:
        yield server


async def _connect(server: NatsServer, principal: str) -> Client:
    tls = ssl_context(session_pki().files(principal))
    return await nats.connect(server.url, tls=tls, connect_timeout=5, max_reconnect_attempts=0)


async def test_an_auditors_run_on_the_platform_is_recorded_by_governance(
    secure_nats: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from services.governance.bootstrap import bootstrap as governance_boot

    bootstrap = await _connect(secure_nats, "service:bootstrap")
    try:
        await ensure_streams(bootstrap.jetstream())
        await grant_dev_roles(bootstrap.jetstream())
    finally:
        await bootstrap.close()
    log_before = secure_nats.log_path.stat().st_size
    var_dir = tmp_path_factory.mktemp("audit-secure-var")
    saved = dict(os.environ)
    os.environ.update(
        {"FRAUD_NATS_URL": secure_nats.url, "FRAUD_VAR_DIR": str(var_dir), "FRAUD_TRITON_GRPC_URL": "127.0.0.1:1"}
    )
    try:
        governance = await start_in_process("governance", governance_boot, wait_ready=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        cli = Cli(secure_nats, var_dir, governance.address)  # reads NATS and records as user:dev-auditor
        out = await cli("verify", "--stream", "NOPE", "--actor", "case 12", code=2, nats_url=secure_nats.url)
        assert "there is no stream 'NOPE'" in out and "not recorded" not in out
    finally:
        await governance.stop()
    auditor = await _connect(secure_nats, "user:dev-auditor")
    try:
        msg = await auditor.jetstream().get_last_msg("AUDIT", "fraud.audit.commands.verify")
    finally:
        await auditor.close()
    envelope = from_nats(msg.headers, msg.data)
    run = envelope.payload(audit_pb.AuditCommandRun)
    assert (run.actor, run.command, run.exit_code) == ("user:dev-auditor", "audit verify", 2)
    assert run.arguments[-1] == "note=case 12" and envelope.source == "/fraud/governance"
    logged = secure_nats.log_path.read_bytes()[log_before:].decode(errors="replace")
    assert [line for line in logged.splitlines() if "Violation" in line] == []
