"""A service on the secure event log stops with one line when it cannot work there: its streams not made yet by
`fraudctl up`'s bootstrap, or its certificate refused by nats-server; never a hang or a silent retry loop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudshared.identity import DevCA, Principal
from fraudshared.nats_connect import NatsRefused
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


@pytest.mark.parametrize(
    "who, reason",
    [
        ("user:nobody", "the server refused our credentials (nats: 'Authorization Violation')"),
        # TLS 1.3 reports this as an alert or, when the alert loses the race, as the connection closing.
        ("other-ca", "TLS"),
    ],
)
async def test_a_service_nats_refuses_stops_with_the_reason(
    empty_secure_nats: NatsServer, tmp_path: Path, who: str, reason: str
) -> None:
    """Our certificate without a NATS user, or one from another CA: one line naming why, not a retry loop."""
    if who == "other-ca":
        files = DevCA.load_or_create(tmp_path / "other-ca").issue(Principal("service", "monitor"), tmp_path / "m")
    else:
        files = session_pki().files(who)

    async def nothing(ctx: ServiceContext) -> list[object]:
        raise AssertionError("bootstrap must not run without NATS")

    saved = dict(os.environ)
    os.environ.update(
        {
            "FRAUD_NATS_URL": empty_secure_nats.url,
            "FRAUD_VAR_DIR": str(tmp_path),
            "FRAUD_MONITOR_TLS_CERT_FILE": str(files.cert),
            "FRAUD_MONITOR_TLS_KEY_FILE": str(files.key),
        }
    )
    try:
        with pytest.raises(NatsRefused) as refused:
            await start_in_process("monitor", nothing, timeout=60)  # type: ignore[arg-type]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert reason in str(refused.value) and empty_secure_nats.url in str(refused.value)
    if who == "other-ca":
        assert "our certificate" in str(refused.value)
