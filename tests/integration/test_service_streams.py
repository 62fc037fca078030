"""A service on the secure event log may not create streams: started before `fraudctl up`'s bootstrap made
them, it stops with one line saying so, instead of hanging or crash-looping on a refused request."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fraudshared.nats_server import NatsServer
from fraudshared.service import ServiceContext, StreamsNotReady, start_in_process
from tests.fixtures.identity import session_pki

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def empty_secure_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server_files = session_pki().files("service:nats", server=True)
    with NatsServer(tmp_path_factory.mktemp("empty-secure-nats") / "jetstream", secure=server_files) as server:
        yield server


async def test_a_service_refuses_to_start_without_the_streams(
    empty_secure_nats: NatsServer, tmp_path: os.PathLike[str]
) -> None:
    async def nothing(ctx: ServiceContext) -> list[object]:
        raise AssertionError("bootstrap must not run without the streams")

    saved = dict(os.environ)
    os.environ.update({"FRAUD_NATS_URL": empty_secure_nats.url, "FRAUD_VAR_DIR": str(tmp_path)})
    try:
        with pytest.raises(StreamsNotReady, match=r"monitor: the event log's streams are missing .*`fraudctl up`"):
            await start_in_process("monitor", nothing, timeout=60)  # type: ignore[arg-type]
    finally:
        os.environ.clear()
        os.environ.update(saved)
