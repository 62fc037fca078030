"""The whole platform on a nats-server with TLS and per-principal users (issue 13, item 5).

Streams and the first role grants are made by ``service:bootstrap``, as `fraudctl up` does; then every
service starts in this process with its own certificate (tests.fixtures.identity), a transaction is scored
through ingest -> features -> scoring, and a label reaches features. nats-server logs every refused publish
or subscription, so an empty list of violations proves that the table in fraudshared.nats_access lets each
service do its job.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.ingest.v1 import ingest_service_pb2 as ingest_pb
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudml.datagen import synthetic_pan
from fraudshared import subjects
from fraudshared.events.streams import ensure_streams
from fraudshared.identity import ssl_context
from fraudshared.nats_server import NatsServer
from fraudshared.service import RunningService, start_in_process
from tests.fixtures.identity import aio_channel, grant_dev_roles, session_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server_files = session_pki().files("service:nats", server=True)
    with NatsServer(tmp_path_factory.mktemp("secure-platform-nats") / "jetstream", secure=server_files) as server:
        yield server


async def _connect(server: NatsServer, principal: str) -> Client:
    tls = ssl_context(session_pki().files(principal))
    return await nats.connect(server.url, tls=tls, connect_timeout=5, max_reconnect_attempts=0)


async def _label_applied(server: NatsServer, tx_id: str) -> bool:
    auditor = await _connect(server, "user:dev-auditor")
    try:
        for _ in range(200):
            info = await auditor.jetstream().stream_info("FEATURES", subjects_filter="fraud.features.label.>")
            if any(f".{tx_id}" in subject for subject in info.state.subjects or {}):
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await auditor.close()


async def test_the_whole_platform_scores_a_transaction_with_no_permission_violation(
    secure_nats: NatsServer,
    triton_server: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from services.features.bootstrap import bootstrap as features_boot
    from services.governance.bootstrap import bootstrap as governance_boot
    from services.ingest.bootstrap import bootstrap as ingest_boot
    from services.monitor.bootstrap import bootstrap as monitor_boot
    from services.scoring.bootstrap import bootstrap as scoring_boot

    bootstrap = await _connect(secure_nats, "service:bootstrap")  # as `fraudctl up` does
    try:
        await ensure_streams(bootstrap.jetstream())
        await grant_dev_roles(bootstrap.jetstream())
    finally:
        await bootstrap.close()
    log_before = secure_nats.log_path.stat().st_size
    env = {
        "FRAUD_NATS_URL": secure_nats.url,
        "FRAUD_VAR_DIR": str(tmp_path_factory.mktemp("secure-platform-var")),
        "FRAUD_TRITON_GRPC_URL": triton_server.grpc_url,  # type: ignore[attr-defined]
        "FRAUD_TRITON_MODEL_REPO": str(triton_server.repo_dir),  # type: ignore[attr-defined]
    }
    saved = dict(os.environ)
    running: dict[str, RunningService] = {}
    try:
        os.environ.update(env)  # read by each bootstrap at start only
        running["governance"] = await start_in_process("governance", governance_boot, wait_ready=True)
        os.environ["FRAUD_GOVERNANCE_ADDR"] = running["governance"].address
        for name, boot in (("features", features_boot), ("scoring", scoring_boot)):
            running[name] = await start_in_process(name, boot, wait_ready=True)
        os.environ["FRAUD_FEATURES_ADDR"] = running["features"].address
        os.environ["FRAUD_SCORING_ADDR"] = running["scoring"].address
        for name, boot in (("monitor", monitor_boot), ("ingest", ingest_boot)):
            running[name] = await start_in_process(name, boot, wait_ready=True)
        os.environ.clear()
        os.environ.update(saved)
        tx_id = f"tx-secure-{uuid.uuid4().hex[:10]}"
        request = ingest_pb.ScoreTransactionRequest(
            transaction_id=tx_id, pan=synthetic_pan(777), terminal_id="T-0001",
            amount=money_pb2.Money(amount_minor=4250, currency="EUR"), channel=common.CHANNEL_CARD_PRESENT,
        )  # fmt: skip
        request.event_time.FromDatetime(datetime.now(UTC).replace(microsecond=0))
        async with aio_channel(running["ingest"].address, "dev-scorer") as channel:
            answer = await ingest_grpc.IngestServiceStub(channel).ScoreTransaction(request, timeout=10)
        assert answer.transaction_id == tx_id and answer.decision != common.DECISION_UNSPECIFIED
        # A label: ingest appends LABELS, features follows it and appends LabelApplied to FEATURES.
        label = ingest_pb.ReportLabelRequest(transaction_id=tx_id, is_fraud=True, source="chargeback")
        label.reported_at.FromDatetime(datetime.now(UTC).replace(microsecond=0))
        async with aio_channel(running["ingest"].address, "dev-labeler") as channel:
            assert (await ingest_grpc.IngestServiceStub(channel).ReportLabel(label, timeout=10)).appended
        assert await _label_applied(secure_nats, tx_id)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for service in reversed(list(running.values())):
            await service.stop()
    auditor = await _connect(secure_nats, "user:dev-auditor")
    for stream, subject in (
        ("TRANSACTIONS", subjects.transaction_received_any(tx_id)),
        ("FEATURES", subjects.feature_vector_computed_any(tx_id)),
        ("PREDICTIONS", subjects.prediction_made_any(tx_id)),
    ):
        info = await auditor.jetstream().stream_info(stream, subjects_filter=subject)
        assert sum((info.state.subjects or {}).values()) == 1, stream
    await auditor.close()
    logged = secure_nats.log_path.read_bytes()[log_before:].decode(errors="replace")
    assert [line for line in logged.splitlines() if "Violation" in line] == []  # the platform never hit a wall
