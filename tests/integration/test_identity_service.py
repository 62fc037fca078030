"""A real service lifecycle (run_service via start_in_process) with identity: mTLS, roles, grants, tokens."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from fraud.access.v1 import access_service_pb2 as pb
from fraud.access.v1 import access_service_pb2_grpc as pb_grpc
from fraudshared.config import ConfigError
from fraudshared.grpc_server import ServicerSpec
from fraudshared.identity import ClientCredential, current_principal, grant_role, revoke_role, secure_aio_channel
from fraudshared.nats_server import NatsServer
from fraudshared.service import RunningService, ServiceContext, start_in_process
from tests.fixtures.identity import DevPki, TestIssuer, aio_channel

pytestmark = pytest.mark.integration
SERVICE = "governance"  # any of the five: its certificate is in the session environment


class EchoAccess(pb_grpc.AccessServiceServicer):
    """ListGrants answers with the caller the handler saw and how it authenticated."""

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        caller = current_principal()
        return pb.ListGrantsResponse(grants=[pb.Grant(principal=caller.id, role=caller.method)])


async def _bootstrap(ctx: ServiceContext) -> list[ServicerSpec]:
    return [(pb_grpc.add_AccessServiceServicer_to_server, EchoAccess(), "fraud.access.v1.AccessService")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest_asyncio.fixture(loop_scope="session")
async def service(
    nats_server: NatsServer, oidc_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[RunningService, int]]:
    token_port = _free_port()
    monkeypatch.setenv("FRAUD_NATS_URL", nats_server.url)
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("FRAUD_OIDC_ISSUER", oidc_issuer.ISSUER)
    monkeypatch.setenv("FRAUD_OIDC_AUDIENCE", oidc_issuer.AUDIENCE)
    monkeypatch.setenv("FRAUD_OIDC_JWKS_URL", oidc_issuer.jwks_url)
    monkeypatch.setenv(f"FRAUD_{SERVICE.upper()}_GRPC_TOKEN_PORT", str(token_port))
    running = await start_in_process(SERVICE, _bootstrap, wait_ready=True)
    try:
        yield running, token_port
    finally:
        await running.stop()


async def _list(channel: grpc.aio.Channel) -> pb.ListGrantsResponse:
    async with channel:
        reply: pb.ListGrantsResponse = await pb_grpc.AccessServiceStub(channel).ListGrants(
            pb.ListGrantsRequest(), timeout=5
        )
        return reply


async def _code(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await _list(channel)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _until_code(make: Callable[[], grpc.aio.Channel], code: grpc.StatusCode) -> None:
    async with asyncio.timeout(15):
        while (seen := await _code(make())) != code:  # noqa: ASYNC110 - polls a remote server
            await asyncio.sleep(0.05)
    assert seen == code


async def test_roles_follow_grants_and_revocations(service: tuple[RunningService, int], js: JetStreamContext) -> None:
    running, _ = service
    name = f"t-{uuid.uuid4().hex[:10]}"

    def as_caller() -> grpc.aio.Channel:
        return aio_channel(running.address, name)

    refused = await _code(as_caller())
    assert refused == grpc.StatusCode.PERMISSION_DENIED
    assert await grant_role(js, f"user:{name}", "auditor", "user:dev-admin", "integration test")
    await _until_code(as_caller, grpc.StatusCode.OK)
    assert (await _list(as_caller())).grants[0].principal == f"user:{name}"
    assert await revoke_role(js, f"user:{name}", "auditor", "user:dev-admin", "integration test")
    await _until_code(as_caller, grpc.StatusCode.PERMISSION_DENIED)


async def test_a_caller_without_a_certificate_is_refused(service: tuple[RunningService, int], dev_pki: DevPki) -> None:
    running, _ = service
    tls_only = grpc.ssl_channel_credentials(root_certificates=dev_pki.ca_file.read_bytes())
    assert await _code(grpc.aio.secure_channel(running.address, tls_only)) == grpc.StatusCode.UNAVAILABLE
    assert await _code(grpc.aio.insecure_channel(running.address)) == grpc.StatusCode.UNAVAILABLE


async def test_bearer_tokens_on_the_token_port(
    service: tuple[RunningService, int], js: JetStreamContext, oidc_issuer: TestIssuer, dev_pki: DevPki
) -> None:
    _, token_port = service
    name = f"t-{uuid.uuid4().hex[:10]}"

    def by_token(token: str) -> grpc.aio.Channel:
        return secure_aio_channel(f"127.0.0.1:{token_port}", ClientCredential(ca=dev_pki.ca_file, token=token))

    assert await _code(by_token(oidc_issuer.token(name))) == grpc.StatusCode.PERMISSION_DENIED
    assert await _code(by_token(oidc_issuer.token(name, aud="other"))) == grpc.StatusCode.UNAUTHENTICATED
    await grant_role(js, f"user:{name}", "admin", "user:dev-admin", "integration test")
    await _until_code(lambda: by_token(oidc_issuer.token(name)), grpc.StatusCode.OK)
    (grant,) = (await _list(by_token(oidc_issuer.token(name)))).grants
    assert (grant.principal, grant.role) == (f"user:{name}", "oidc")


async def test_a_service_without_its_tls_files_does_not_start(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_NATS_URL", nats_server.url)
    monkeypatch.delenv(f"FRAUD_{SERVICE.upper()}_TLS_KEY_FILE")
    with pytest.raises(ConfigError, match=f"FRAUD_{SERVICE.upper()}_TLS_KEY_FILE is required"):
        await start_in_process(SERVICE, _bootstrap)
