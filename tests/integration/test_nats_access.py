"""A log only the platform can write (issue 13, item 5): a real nats-server with TLS and per-principal users.

Each principal connects with a certificate of the session's development CA (tests.fixtures.identity);
the server maps its SPIFFE URI SAN to a user of fraudshared.nats_access.NATS_ACCESS. Refusals are read from
what the server tells the client (``permissions violation for publish to "<subject>"``) and from the streams
themselves (nothing was stored, the stream is still there).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.api import StreamConfig

from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudshared import subjects
from fraudshared.decision_chain import score_request
from fraudshared.events.envelope import Envelope, new_envelope
from fraudshared.events.follow import follow
from fraudshared.events.once import OnceLog
from fraudshared.events.store import EventStore
from fraudshared.events.streams import default_specs, ensure_streams
from fraudshared.identity import CredentialFiles, DevCA, Principal, ssl_context
from fraudshared.nats_access import NATS_ACCESS, render_config
from fraudshared.nats_server import NatsServer
from fraudshared.rpc import Forward, RpcClient, RpcServer
from tests.fixtures.identity import session_pki

pytestmark = pytest.mark.integration
REFUSED_WITHIN_S = 1.0  # a refused request never gets an answer: this is how long we wait for none


@pytest.fixture(scope="module")
def secure_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server_files = session_pki().files("service:nats", server=True)
    with NatsServer(tmp_path_factory.mktemp("secure-nats") / "jetstream", secure=server_files) as server:
        yield server


class Connection:
    """One principal's connection, with every asynchronous error the server sent it."""

    def __init__(self, nc: Client, errors: list[str]) -> None:
        self.nc, self.errors = nc, errors
        self.js = nc.jetstream(timeout=REFUSED_WITHIN_S)

    def violations(self) -> str:
        return "\n".join(self.errors)


async def connect_as(server: NatsServer, principal: str) -> Connection:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    files = session_pki().files(principal)
    nc = await nats.connect(
        server.url, tls=ssl_context(files), error_cb=on_error, connect_timeout=5, max_reconnect_attempts=0
    )
    return Connection(nc, errors)


@pytest_asyncio.fixture(loop_scope="session")
async def as_principal(secure_nats: NatsServer) -> AsyncIterator[dict[str, Connection]]:
    """Connections by principal id, opened on first use; streams created by service:bootstrap first."""
    opened: dict[str, Connection] = {}
    bootstrap = await connect_as(secure_nats, "service:bootstrap")
    await ensure_streams(bootstrap.js)
    opened["service:bootstrap"] = bootstrap
    for principal in NATS_ACCESS:
        if principal not in opened:
            opened[principal] = await connect_as(secure_nats, principal)
    try:
        yield opened
    finally:
        for connection in opened.values():
            if not connection.nc.is_closed:
                await connection.nc.close()


def _envelope() -> tuple[str, Envelope]:
    tx_id = f"tx-{uuid.uuid4().hex[:12]}"
    message = events.TransactionReceived(transaction_id=tx_id)
    envelope = new_envelope(
        message, source="/test", subject=tx_id, event_id=tx_id, time=datetime.now(UTC), schema_version=1
    )
    return tx_id, envelope


async def _refused_connect(server: NatsServer, context: ssl.SSLContext) -> str:
    with pytest.raises(Exception) as refused:
        nc = await nats.connect(
            server.url, tls=context, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False
        )
        await nc.flush(timeout=2)
    return f"{type(refused.value).__name__}: {refused.value}"


def _trusting_context(server_ca: Path, client: CredentialFiles | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


async def test_without_a_certificate_or_with_a_stranger_s_the_server_refuses_the_connection(
    secure_nats: NatsServer, tmp_path: Path
) -> None:
    ca = session_pki().ca_file
    no_certificate = await _refused_connect(secure_nats, _trusting_context(ca, None))
    other_ca = DevCA.load_or_create(tmp_path / "other-ca")  # same names, another CA: not ours
    forged = other_ca.issue(Principal("service", "ingest"), tmp_path / "forged", server_names=())
    stranger = await _refused_connect(secure_nats, _trusting_context(ca, forged))
    # Our CA, but a principal with no NATS user (a scorer calls ingest over gRPC, never NATS).
    scorer = session_pki().files("user:dev-scorer")
    unmapped = await _refused_connect(secure_nats, _trusting_context(ca, scorer))
    assert no_certificate and stranger  # refused in the handshake (how the client words it depends on timing)
    assert "Authorization Violation" in unmapped


def test_plain_text_to_the_tls_port_gets_no_session(secure_nats: NatsServer) -> None:
    with socket.create_connection((secure_nats.host, secure_nats.port), timeout=5) as sock:
        info = sock.recv(4096).decode()
        assert info.startswith("INFO ") and json.loads(info[5:])["tls_required"] is True
        sock.sendall(b'CONNECT {"verbose":false}\r\nPUB fraud.tx.received.0.forged 1\r\nx\r\nPING\r\n')
        answer = b""
        try:  # the server expects a TLS handshake and hangs up on anything else
            while chunk := sock.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"PONG" not in answer


async def _refused_publish(connection: Connection, subject: str) -> None:
    """A JetStream publish that the server refuses: no ack, a permissions violation, nothing stored."""
    with pytest.raises(nats.errors.TimeoutError):
        await connection.js.publish(subject, b"forged", headers={"Nats-Msg-Id": uuid.uuid4().hex})
    await _told(connection, f'permissions violation for publish to "{subject}"')


async def _told(connection: Connection, text: str) -> None:
    for _ in range(50):  # the -ERR arrives asynchronously, next to the timeout
        if text.lower() in connection.violations().lower():  # nats-py lower-cases the server's -ERR
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {text!r}; the server said: {connection.violations() or '(nothing)'}")


async def _last_seq(connection: Connection, stream: str) -> int:
    return int((await connection.js.stream_info(stream)).state.last_seq or 0)


async def test_a_service_publishes_its_own_events_and_none_of_another_s(as_principal: dict[str, Connection]) -> None:
    ingest, scoring_, auditor = (
        as_principal["service:ingest"],
        as_principal["service:scoring"],
        as_principal["user:dev-auditor"],
    )
    tx_id, envelope = _envelope()
    before = await _last_seq(auditor, "TRANSACTIONS")
    forged = subjects.transaction_received("card-1", f"{tx_id}-forged")
    await _refused_publish(scoring_, forged)  # scoring forging ingest's TransactionReceived
    appended = await EventStore(ingest.js).append(envelope, subject=subjects.transaction_received("card-1", tx_id))
    assert appended.stream == "TRANSACTIONS" and appended.seq == before + 1  # the forgery took no sequence
    # Ingest's append-once (expected-sequence claim, then a next-by-subject read of the record on a retry).
    once = OnceLog(ingest.js, EventStore(ingest.js), "/test")
    received = events.TransactionReceived(transaction_id=f"{tx_id}-once", schema_version=1)
    subject = subjects.transaction_received("card-1", received.transaction_id)
    claim = subjects.transaction_received_any(received.transaction_id)
    kwargs = {"business_id": received.transaction_id, "subject": subject, "stream": "TRANSACTIONS"}
    assert await once.append_once(received, time=datetime.now(UTC), claim=claim, **kwargs) is None
    assert await once.append_once(received, time=datetime.now(UTC), claim=claim, **kwargs) == received
    # The auditor reads it back (stream info, message get, an ordered read) but cannot write anything.
    stored = await auditor.js.get_msg("TRANSACTIONS", appended.seq)
    assert stored.subject == subjects.transaction_received("card-1", tx_id)
    read = [
        e async for e in EventStore(auditor.js).read_subject("TRANSACTIONS", subjects.transaction_received_any(tx_id))
    ]
    assert [e.envelope.id for e in read] == [tx_id]
    await _refused_publish(auditor, subjects.transaction_received("card-1", f"{tx_id}-auditor"))
    await _refused_publish(auditor, "fraud.access.0123456789abcdef0123456789abcdef")
    # Quarantine records: under the service's own reader names only (its followers', its grants follower's).
    seq = uuid.uuid4().int % 10**9
    assert (await scoring_.js.publish(f"fraud.quarantine.scoring-access.ACCESS.{seq}", b"r")).stream == "QUARANTINE"
    await _refused_publish(scoring_, f"fraud.quarantine.ingest.TRANSACTIONS.{seq}")
    assert await _last_seq(auditor, "TRANSACTIONS") == appended.seq + 1


async def test_only_the_notary_in_governance_appends_to_audit(as_principal: dict[str, Connection]) -> None:
    subject = f"fraud.audit.checkpoint.TEST{uuid.uuid4().hex[:8].upper()}"
    others = [c for p, c in as_principal.items() if p != "service:governance"]
    await asyncio.gather(*(_refused_publish(connection, subject) for connection in others))
    ack = await as_principal["service:governance"].js.publish(subject, b"checkpoint")
    assert ack.stream == "AUDIT"
    assert (await as_principal["user:dev-auditor"].js.get_last_msg("AUDIT", subject)).seq == ack.seq


async def test_role_grants_reach_access_only_through_governance_or_bootstrap(
    as_principal: dict[str, Connection],
) -> None:
    """An admin grants through AccessService (no self-grant, granted_by = the caller), never straight on NATS."""
    subject = "fraud.access.0123456789abcdef0123456789abcdef"
    writers = {"service:governance", "service:bootstrap"}
    others = [c for p, c in as_principal.items() if p not in writers]
    assert any(p == "user:dev-admin" for p in as_principal if p not in writers)
    await asyncio.gather(*(_refused_publish(connection, subject) for connection in others))


async def test_no_principal_deletes_purges_or_edits_a_stream_and_only_bootstrap_creates(
    as_principal: dict[str, Connection],
) -> None:
    async def try_all(connection: Connection) -> None:
        js = connection.js
        for attempt in (
            js.delete_stream("TRANSACTIONS"),
            js.purge_stream("TRANSACTIONS"),
            js.delete_msg("TRANSACTIONS", 1),
        ):
            with pytest.raises(nats.errors.TimeoutError):
                await attempt
        await _told(connection, 'publish to "$JS.API.STREAM.DELETE.TRANSACTIONS"')
        await _told(connection, 'publish to "$JS.API.STREAM.PURGE.TRANSACTIONS"')
        await _told(connection, 'publish to "$JS.API.STREAM.MSG.DELETE.TRANSACTIONS"')

    await asyncio.gather(*(try_all(c) for c in as_principal.values()))
    auditor = as_principal["user:dev-auditor"]
    assert {info.config.name for info in await auditor.js.streams_info()} >= {s.name for s in default_specs()}
    name = f"TEST_{uuid.uuid4().hex[:8].upper()}"
    config = StreamConfig(name=name, subjects=[f"test.{name.lower()}.>"])

    async def create(connection: Connection) -> None:
        with pytest.raises(nats.errors.TimeoutError):
            await connection.js.add_stream(config)
        await _told(connection, f'publish to "$JS.API.STREAM.CREATE.{name}"')

    await asyncio.gather(*(create(c) for p, c in as_principal.items() if p != "service:bootstrap"))
    created = await as_principal["service:bootstrap"].js.add_stream(config)
    assert created.config.name == name
    # Every service still runs ensure_streams at start: with the streams in place that only reads their info.
    assert set((await ensure_streams(as_principal["service:monitor"].js)).values()) == {"unchanged"}


async def test_no_one_listens_in_on_or_calls_subjects_they_do_not_serve_or_call(
    as_principal: dict[str, Connection],
) -> None:
    scoring_ = as_principal["service:scoring"]
    await scoring_.nc.subscribe("fraud.tx.>")  # core NATS would see every publish: refused
    await scoring_.nc.subscribe(subjects.features_rpc_partition(0))  # taking over features' requests: refused
    await scoring_.nc.flush()
    await _told(scoring_, 'permissions violation for subscription to "fraud.tx.>"')
    await _told(scoring_, f'permissions violation for subscription to "{subjects.features_rpc_partition(0)}"')
    monitor = as_principal["service:monitor"]  # nor does anyone outside the hot path send requests into it
    with pytest.raises(nats.errors.TimeoutError):
        await monitor.nc.request(subjects.features_decide_partition(0), b"forged", timeout=REFUSED_WITHIN_S)
    await _told(monitor, f'permissions violation for publish to "{subjects.features_decide_partition(0)}"')


async def test_the_hot_path_chain_and_the_followers_run_under_their_own_principals(
    as_principal: dict[str, Connection],
) -> None:
    ingest, features_, scoring_ = (as_principal[f"service:{s}"] for s in ("ingest", "features", "scoring"))
    monitor = as_principal["service:monitor"]

    async def compute(
        request: features.ComputeFeaturesRequest, deadline: float | None
    ) -> features.ComputeFeaturesResponse:
        return features.ComputeFeaturesResponse(feature_set_version="card-v2", values=[1.0, 2.0])

    async def score(request: scoring.ScoreFeaturesRequest, deadline: float | None) -> scoring.ScoreFeaturesResponse:
        return scoring.ScoreFeaturesResponse(score=sum(request.values) / 10)

    decide = subjects.features_decide_partition(3)
    features_server = RpcServer(
        decide, features.ComputeFeaturesRequest, compute, 8, service="features",
        forward=Forward(subjects.SCORING_RPC, score_request),
    )  # fmt: skip
    scoring_server = RpcServer(subjects.SCORING_RPC, scoring.ScoreFeaturesRequest, score, 8, service="scoring")
    await features_.nc.subscribe(decide, queue="features-3", cb=features_server.on_message_forwarded)
    await scoring_server.subscribe(scoring_.nc, queue="scoring")
    await features_.nc.flush()
    await scoring_.nc.flush()
    request = features.ComputeFeaturesRequest(transaction_id="tx-chain", subject_id="s1", terminal_id="T1")
    request.amount.amount_minor, request.amount.currency = 1250, "EUR"
    request.event_time.FromSeconds(1_790_000_000)
    answer = await RpcClient(ingest.nc).call(decide, request, scoring.ScoreFeaturesResponse, 5.0)
    assert answer.score == pytest.approx(0.3)  # ingest -> features -> scoring -> ingest, replies by allow_responses

    # Scoring appends PredictionMade; the monitor follows PREDICTIONS as itself.
    seen: list[str] = []
    follower = await follow(
        monitor.js, EventStore(monitor.js), "PREDICTIONS", subjects.PREDICTIONS_MADE_ALL,
        lambda seq, envelope: seen.append(envelope.id), reader="monitor",
    )  # fmt: skip
    try:
        tx_id, envelope = _envelope()
        await EventStore(scoring_.js).append(envelope, subject=subjects.prediction_made("card-1", tx_id))
        for _ in range(200):
            if tx_id in seen:
                break
            await asyncio.sleep(0.025)
        assert tx_id in seen
    finally:
        await follower.stop()
    assert "violation" not in "".join(c.violations() for c in (ingest, features_, scoring_, monitor))


def test_the_rendered_config_names_every_principal_by_its_certificate(tmp_path: Path) -> None:
    files = CredentialFiles.in_dir(tmp_path)
    text = render_config(
        port=4222, monitor_port=8222, host="127.0.0.1", store_dir=tmp_path / "js", server_name="fraud",
        tls=files, trust_domain="bank.example",
    )  # fmt: skip
    config = json.loads(text.split("\n", 1)[1])
    assert config["tls"]["verify_and_map"] is True and config["tls"]["ca_file"] == str(files.ca)
    users = {u["user"]: u["permissions"] for u in config["authorization"]["users"]}
    assert set(users) == {Principal.parse(p).spiffe_id("bank.example") for p in NATS_ACCESS}
    writers = {u for u, p in users.items() if "fraud.audit.>" in p["publish"]["allow"]}
    assert writers == {"spiffe://bank.example/service/governance"}
    for user, permissions in users.items():
        assert "$JS.API.STREAM.DELETE.>" in permissions["publish"]["deny"], user
        assert "$JS.API.STREAM.PURGE.>" in permissions["publish"]["deny"], user
