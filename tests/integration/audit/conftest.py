"""One nats-server for the audit tests in this folder (package scope), whose file store the tests tamper with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from fraudshared.events.streams import ensure_streams
from fraudshared.nats_server import NatsServer


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
