"""The development CA, mTLS gRPC credentials and client credential resolution, against a real grpc.aio server."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fraudshared.config import ConfigError
from fraudshared.identity import (
    ClientCredential,
    CredentialFiles,
    DevCA,
    Principal,
    resolve_credential,
    secure_aio_channel,
    server_credentials,
    service_credential_files,
)
from tests.fixtures.identity import DevPki, credential

_METHOD = "/test.Who/Am"


async def _who_am_i(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    (uri,) = context.auth_context()["peer_spiffe_id"]
    return Principal.from_spiffe_id(uri.decode()).id.encode()


@pytest_asyncio.fixture(loop_scope="session")
async def mtls_server(dev_pki: DevPki) -> AsyncIterator[str]:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_who_am_i)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Who", {"Am": handler})])
    port = server.add_secure_port("127.0.0.1:0", server_credentials(dev_pki.service_files("governance")))
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def _call(address: str, cred: ClientCredential) -> bytes:
    async with secure_aio_channel(address, cred) as ch:
        result: bytes = await ch.unary_unary(_METHOD)(b"", timeout=5)
        return result


async def test_a_client_certificate_reaches_the_handler_as_its_principal(mtls_server: str) -> None:
    assert await _call(mtls_server, credential("dev-analyst")) == b"user:dev-analyst"
    assert await _call(mtls_server, credential("service:ingest")) == b"service:ingest"


async def test_a_client_without_a_certificate_is_refused(mtls_server: str, dev_pki: DevPki) -> None:
    tls_only = grpc.ssl_channel_credentials(root_certificates=dev_pki.ca_file.read_bytes())
    async with grpc.aio.secure_channel(mtls_server, tls_only) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ch.unary_unary(_METHOD)(b"", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(mtls_server: str, dev_pki: DevPki, tmp_path: Path) -> None:
    other = DevCA.load_or_create(tmp_path / "other-ca").issue(Principal("user", "dev-admin"), tmp_path / "mallory")
    # Trusts the real server (so only the client side can fail) but presents the foreign certificate.
    forged = ClientCredential(ca=dev_pki.ca_file, files=CredentialFiles(dev_pki.ca_file, other.cert, other.key))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(mtls_server, forged)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_is_refused(mtls_server: str) -> None:
    async with grpc.aio.insecure_channel(mtls_server) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ch.unary_unary(_METHOD)(b"", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_issued_certificates_carry_the_spiffe_id_and_usages(dev_pki: DevPki, tmp_path: Path) -> None:
    ca = DevCA.load_or_create(tmp_path / "ca")
    assert stat.S_IMODE((tmp_path / "ca" / "ca-key.pem").stat().st_mode) == 0o600
    assert DevCA.load_or_create(tmp_path / "ca").ca_pem == ca.ca_pem
    files = ca.issue(Principal("service", "scoring"), tmp_path / "scoring", server_names=["localhost", "127.0.0.1"])
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://fraud.local/service/scoring"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    user = ca.issue(Principal("user", "alice"), tmp_path / "alice")
    user_cert = x509.load_pem_x509_certificate(user.cert.read_bytes())
    assert set(user_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.CLIENT_AUTH
    }


def test_service_credential_files_come_from_the_environment(dev_pki: DevPki, tmp_path: Path) -> None:
    env = dev_pki.service_env()
    files = service_credential_files("scoring", env)
    assert files.cert == Path(env["FRAUD_SCORING_TLS_CERT_FILE"])
    with pytest.raises(ConfigError, match="FRAUD_MONITOR_TLS_KEY_FILE"):
        service_credential_files("monitor", {k: v for k, v in env.items() if k != "FRAUD_MONITOR_TLS_KEY_FILE"})
    with pytest.raises(ConfigError, match=r"FRAUD_TLS_CA_FILE .*not a readable file"):
        service_credential_files("monitor", {**env, "FRAUD_TLS_CA_FILE": str(tmp_path / "absent.pem")})


def test_resolve_credential_prefers_as_then_credential_dir_then_token(dev_pki: DevPki, tmp_path: Path) -> None:
    ca = DevCA.load_or_create(tmp_path / "pki")
    approver = ca.issue(Principal("user", "dev-approver"), tmp_path / "credentials" / "approver")
    auditor = ca.issue(Principal("user", "dev-auditor"), tmp_path / "elsewhere")
    token_file = tmp_path / "token.jwt"
    token_file.write_text("header.payload.signature\n")
    env = {"FRAUD_CREDENTIAL": str(auditor.cert.parent), "FRAUD_TOKEN_FILE": str(token_file)}
    assert resolve_credential("approver", tmp_path, env).files == approver
    assert resolve_credential(None, tmp_path, env).files == auditor
    token_env = {**env, "FRAUD_CREDENTIAL": "", "FRAUD_TLS_CA_FILE": str(tmp_path / "pki" / "ca.pem")}
    by_token = resolve_credential(None, tmp_path, token_env)
    assert by_token.token == "header.payload.signature" and by_token.files is None
    assert "header" not in repr(by_token)
    with pytest.raises(ConfigError, match=r"no credential named 'nobody'.*approver"):
        resolve_credential("nobody", tmp_path, env)
    with pytest.raises(ConfigError, match=r"no credential: pass --as <name>"):
        resolve_credential(None, tmp_path, {})
