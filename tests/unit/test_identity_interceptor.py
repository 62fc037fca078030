"""AuthInterceptor on a real grpc.aio server: mTLS port and bearer-token port, roles from a Grants fold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from fraud.access.v1 import access_events_pb2 as events
from fraud.access.v1 import access_service_pb2 as pb
from fraud.access.v1 import access_service_pb2_grpc as pb_grpc
from fraudshared.identity import (
    AuthInterceptor,
    ClientCredential,
    DevCA,
    Grants,
    OidcVerifier,
    Principal,
    current_principal,
    secure_aio_channel,
    server_credentials,
    token_server_credentials,
)
from tests.fixtures.identity import DevPki, TestIssuer, aio_channel


class EchoAccess(pb_grpc.AccessServiceServicer):
    """Answers ListGrants with one grant naming the caller the handler saw."""

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        caller = current_principal()
        return pb.ListGrantsResponse(grants=[pb.Grant(principal=caller.id, role=caller.method)])


@dataclass
class Server:
    mtls: str
    token: str
    grants: Grants


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def server(dev_pki: DevPki, oidc_issuer: TestIssuer) -> AsyncIterator[Server]:
    grants = Grants()
    grants.apply(events.RoleGranted(principal="user:dev-auditor", role="auditor", granted_by="user:root"))
    interceptor = AuthInterceptor(grants, OidcVerifier(oidc_issuer.config()))
    srv = grpc.aio.server(interceptors=[interceptor])
    pb_grpc.add_AccessServiceServicer_to_server(EchoAccess(), srv)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), srv)
    reflection.enable_server_reflection(["fraud.access.v1.AccessService", reflection.SERVICE_NAME], srv)
    files = dev_pki.service_files("governance")
    mtls = srv.add_secure_port("127.0.0.1:0", server_credentials(files))
    token = srv.add_secure_port("127.0.0.1:0", token_server_credentials(files))
    await srv.start()
    try:
        yield Server(f"127.0.0.1:{mtls}", f"127.0.0.1:{token}", grants)
    finally:
        await srv.stop(None)


async def _list(channel: grpc.aio.Channel) -> pb.ListGrantsResponse:
    async with channel:
        response: pb.ListGrantsResponse = await pb_grpc.AccessServiceStub(channel).ListGrants(
            pb.ListGrantsRequest(), timeout=5
        )
        return response


async def _refusal(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _list(channel)
    return refused.value


async def test_a_certificate_with_the_role_is_admitted_and_seen_by_the_handler(server: Server) -> None:
    (grant,) = (await _list(aio_channel(server.mtls, "dev-auditor"))).grants
    assert (grant.principal, grant.role) == ("user:dev-auditor", "mtls")


async def test_a_certificate_without_the_role_is_denied(server: Server) -> None:
    refused = await _refusal(aio_channel(server.mtls, "dev-scorer"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == "user:dev-scorer may not call ListGrants: needs one of auditor, admin"
    refused = await _refusal(aio_channel(server.mtls, "service:ingest"))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_grant_or_revocation_applies_to_the_next_call(server: Server) -> None:
    server.grants.apply(events.RoleGranted(principal="user:dev-admin", role="admin", granted_by="user:root"))
    assert (await _list(aio_channel(server.mtls, "dev-admin"))).grants[0].principal == "user:dev-admin"
    server.grants.apply(events.RoleRevoked(principal="user:dev-admin", role="admin", granted_by="user:root"))
    assert (await _refusal(aio_channel(server.mtls, "dev-admin"))).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_while_grants_are_still_being_read_a_missing_role_is_unavailable_not_denied(server: Server) -> None:
    server.grants.following, server.grants.restored = True, False  # a service starting: ACCESS not read yet
    try:
        refused = await _refusal(aio_channel(server.mtls, "dev-scorer"))
        assert (refused.code(), refused.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "access grants not read yet; retry shortly",
        )
        (grant,) = (await _list(aio_channel(server.mtls, "dev-auditor"))).grants  # a role already read works
        assert grant.principal == "user:dev-auditor"
    finally:
        server.grants.following, server.grants.restored = False, False


async def test_health_is_open_and_reflection_needs_only_a_principal(server: Server) -> None:
    async with aio_channel(server.mtls, "dev-nobody") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = [s.name async for r in stream for s in r.list_services_response.service]
        assert "fraud.access.v1.AccessService" in names


async def test_a_bearer_token_on_the_token_port(server: Server, oidc_issuer: TestIssuer, dev_pki: DevPki) -> None:
    def by_token(token: str) -> grpc.aio.Channel:
        return secure_aio_channel(server.token, ClientCredential(ca=dev_pki.ca_file, token=token))

    (grant,) = (await _list(by_token(oidc_issuer.token("dev-auditor")))).grants
    assert (grant.principal, grant.role) == ("user:dev-auditor", "oidc")
    expired = oidc_issuer.token("dev-auditor", lifetime_s=-600)
    refused = await _refusal(by_token(expired))
    assert (refused.code(), refused.details()) == (grpc.StatusCode.UNAUTHENTICATED, "token expired")
    refused = await _refusal(by_token(oidc_issuer.token("dev-scorer")))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_no_credential_on_the_token_port_is_unauthenticated(server: Server, dev_pki: DevPki) -> None:
    tls_only = grpc.ssl_channel_credentials(root_certificates=dev_pki.ca_file.read_bytes())
    refused = await _refusal(grpc.aio.secure_channel(server.token, tls_only))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details() == "no client certificate or bearer token"


async def test_a_certificate_of_our_ca_for_another_trust_domain_is_unauthenticated(
    server: Server, dev_pki: DevPki, tmp_path: Path
) -> None:
    foreign = DevCA.load_or_create(dev_pki.directory / "pki", trust_domain="other.domain")
    files = foreign.issue(Principal("user", "dev-auditor"), tmp_path / "foreign")
    refused = await _refusal(secure_aio_channel(server.mtls, ClientCredential(ca=files.ca, files=files)))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.details() == "certificate identity is not in trust domain fraud.local"
