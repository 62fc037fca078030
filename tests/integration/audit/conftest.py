"""One nats-server for the audit tests in this folder (package scope), whose file store the tests tamper with.

``governance`` serves the AuditService the CLIs record their runs with, over that server's AUDIT stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from fraud.access.v1 import access_events_pb2 as access_events
from fraud.audit.v1 import audit_service_pb2_grpc as audit_grpc
from fraudshared.events.store import EventStore
from fraudshared.events.streams import ensure_streams
from fraudshared.grpc_server import ServerSecurity, build_server
from fraudshared.identity import Grants
from fraudshared.nats_server import NatsServer
from services.governance.adapters.audit_run_log import JetStreamAuditRunLog
from services.governance.entrypoints.audit_servicer import SERVICE_NAME, AuditServicer
from tests.fixtures.identity import DEV_GRANTOR, DEV_GRANTS, DevPki
from tests.integration.audit.audit_support import Governance


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    srv = NatsServer(tmp_path_factory.mktemp("audit-nats") / "store")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="package")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-var")


@pytest_asyncio.fixture(loop_scope="session")
async def js(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        context = nc.jetstream(timeout=5.0)
        await ensure_streams(context)
        yield context
    finally:
        await nc.close()


@pytest_asyncio.fixture(loop_scope="session", scope="package")
async def governance(server: NatsServer, dev_pki: DevPki) -> AsyncIterator[Governance]:
    """The servicer as governance serves it; roles from a Grants fold holding the development grants."""
    nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream(timeout=5.0)
        await ensure_streams(js)
        grants = Grants()
        for principal, role in DEV_GRANTS:
            grants.apply(access_events.RoleGranted(principal=principal, role=role, granted_by=DEV_GRANTOR))
        servicer = AuditServicer(JetStreamAuditRunLog(EventStore(js)))
        grpc_server, port = await build_server(
            "governance",
            [(audit_grpc.add_AuditServiceServicer_to_server, servicer, SERVICE_NAME)],
            tracing=False,
            security=ServerSecurity(files=dev_pki.service_files("governance"), grants=grants),
        )
        await grpc_server.start()
        try:
            yield Governance(f"127.0.0.1:{port}")
        finally:
            await grpc_server.stop(None)
    finally:
        await nc.close()
