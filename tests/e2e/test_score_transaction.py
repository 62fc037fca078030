"""ScoreTransaction end to end: gRPC into ingest, features, scoring, Triton; events on JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nats
import pytest
import pytest_asyncio

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl.demo import deploy
from fraudml.datagen import generate, synthetic_pan
from fraudml.train import train
from tests.e2e import dev_credentials
from tests.fixtures.identity import aio_channel
from tests.fixtures.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
PAN = synthetic_pan(424242)
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def deployed(platform: Platform) -> str:
    df = generate(n_customers=150, n_terminals=150, n_days=30, seed=3)
    result = train(df, train_days=16, delay_days=7, test_days=7)
    dev_credentials.install(platform.var_dir)  # deploy calls as model-owner, approver and approver-2
    version, _ = await deploy(platform.address("governance"), platform.var_dir, result)
    for _ in range(50):  # scoring folds the MODELS stream; wait until the champion is visible
        response = await score(platform, request("probe-ready", minutes=-600))
        if response.scoring_path == common.SCORING_PATH_TRITON:
            break
        import asyncio

        await asyncio.sleep(0.1)
    return version


@pytest_asyncio.fixture(loop_scope="session")
async def stub(platform: Platform) -> AsyncIterator[ingest_grpc.IngestServiceStub]:
    """Ingest as user:dev-scorer (ScoreTransaction)."""
    async with aio_channel(platform.address("ingest"), "dev-scorer") as channel:
        yield ingest_grpc.IngestServiceStub(channel)


@pytest_asyncio.fixture(loop_scope="session")
async def labeler(platform: Platform) -> AsyncIterator[ingest_grpc.IngestServiceStub]:
    """Ingest as user:dev-labeler (ReportLabel)."""
    async with aio_channel(platform.address("ingest"), "dev-labeler") as channel:
        yield ingest_grpc.IngestServiceStub(channel)


def request(
    tx_id: str, *, pan: str = PAN, amount: int = 4250, currency: str = "EUR", minutes: int = 0
) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest(
        transaction_id=tx_id,
        pan=pan,
        terminal_id="T-0001",
        amount=money_pb2.Money(amount_minor=amount, currency=currency),
        channel=common.CHANNEL_CARD_PRESENT,
    )
    r.event_time.FromDatetime(NOW + timedelta(minutes=minutes))
    return r


async def score(platform: Platform, r: ingest.ScoreTransactionRequest) -> ingest.ScoreTransactionResponse:
    async with aio_channel(platform.address("ingest"), "dev-scorer") as channel:
        return await ingest_grpc.IngestServiceStub(channel).ScoreTransaction(r, timeout=10)


async def messages(platform: Platform, stream: str, subject: str) -> int:
    nc = await nats.connect(platform.nats_url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


def _with(r: ingest.ScoreTransactionRequest, **changes: object) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest.FromString(r.SerializeToString())
    for key, value in changes.items():
        if key == "clear":
            r.ClearField(str(value))
        elif key == "event_time":
            r.event_time.FromDatetime(value)  # type: ignore[arg-type]
        elif key == "amount":
            r.amount.CopyFrom(value)  # type: ignore[arg-type]
        else:
            setattr(r, key, value)
    return r


BAD_INPUTS = [
    ("amount", lambda r: _with(r, clear="amount")),
    ("amount.amount_minor", lambda r: _with(r, amount=money_pb2.Money(amount_minor=-5, currency="EUR"))),
    ("amount.currency", lambda r: _with(r, amount=money_pb2.Money(amount_minor=100, currency="XXX"))),
    ("pan", lambda r: _with(r, pan="4111111111111112")),
    ("pan", lambda r: _with(r, pan="41111111")),
    ("event_time", lambda r: _with(r, event_time=NOW + timedelta(days=2))),
    ("transaction_id", lambda r: _with(r, transaction_id="x" * 65)),
    ("terminal_id", lambda r: _with(r, terminal_id="T" * 5000)),
]


@pytest.mark.parametrize(("field", "mutate"), BAD_INPUTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_INPUTS)])
async def test_bad_input_is_invalid_argument_naming_the_field_and_appends_nothing(
    platform: Platform, stub: ingest_grpc.IngestServiceStub, field: str, mutate: object
) -> None:
    before = await messages(platform, "TRANSACTIONS", "fraud.tx.>")
    bad = mutate(request(f"bad-{field.replace('.', '-')}"))  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ScoreTransaction(bad, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":") or f"; {field}:" in err.value.details()
    assert PAN not in err.value.details()
    assert await messages(platform, "TRANSACTIONS", "fraud.tx.>") == before


async def test_decision_goes_through_triton_and_records_each_event_once(
    platform: Platform, deployed: str, stub: ingest_grpc.IngestServiceStub
) -> None:
    response = await stub.ScoreTransaction(request("e2e-tx-1", minutes=-30), timeout=10)
    assert response.decision in (common.DECISION_APPROVE, common.DECISION_REVIEW, common.DECISION_DECLINE)
    assert response.scoring_path == common.SCORING_PATH_TRITON and not response.degraded
    assert response.model.version == deployed and len(response.model.artifact_sha256) == 64
    assert 0.0 <= response.score <= 1.0 and not response.replayed
    for stream, subject in (
        ("TRANSACTIONS", "fraud.tx.received.*.e2e-tx-1"),
        ("FEATURES", "fraud.features.computed.*.e2e-tx-1"),
        ("PREDICTIONS", "fraud.predictions.made.*.e2e-tx-1"),
    ):
        assert await messages(platform, stream, subject) == 1, stream


async def test_retry_returns_the_same_decision_and_appends_nothing(
    platform: Platform, deployed: str, stub: ingest_grpc.IngestServiceStub
) -> None:
    first = await stub.ScoreTransaction(request("e2e-retry", minutes=-20), timeout=10)
    before = {s: await messages(platform, s, ">") for s in ("TRANSACTIONS", "FEATURES", "PREDICTIONS")}
    again = await stub.ScoreTransaction(request("e2e-retry", minutes=-20), timeout=10)
    assert again.replayed and again.decision == first.decision and again.score == first.score
    assert {s: await messages(platform, s, ">") for s in before} == before
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ScoreTransaction(request("e2e-retry", amount=1, minutes=-20), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_the_same_id_with_another_card_is_already_exists_on_any_partition(
    platform: Platform, stub: ingest_grpc.IngestServiceStub
) -> None:
    first = await stub.ScoreTransaction(request("e2e-other-card", minutes=-15), timeout=10)
    # Eight partitions: of five other cards, some land on another partition than the first (the old guard's hole).
    for n in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ScoreTransaction(request("e2e-other-card", pan=synthetic_pan(9000 + n), minutes=-15), timeout=10)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    again = await stub.ScoreTransaction(request("e2e-other-card", minutes=-15), timeout=10)
    assert again.replayed and (again.decision, again.score) == (first.decision, first.score)
    for stream, subject in (
        ("TRANSACTIONS", "fraud.tx.received.*.e2e-other-card"),
        ("PREDICTIONS", "fraud.predictions.made.*.e2e-other-card"),
    ):
        assert await messages(platform, stream, subject) == 1, stream


async def test_very_large_amount_is_not_approved(deployed: str, stub: ingest_grpc.IngestServiceStub) -> None:
    response = await stub.ScoreTransaction(request("e2e-large", amount=950_000, minutes=-10), timeout=10)
    assert response.decision in (common.DECISION_REVIEW, common.DECISION_DECLINE)
    assert response.reason_codes and response.reason_codes[0].code.startswith("MODEL_SCORE_AT_")


async def test_labels_are_recorded_once_and_need_a_known_transaction(
    deployed: str, stub: ingest_grpc.IngestServiceStub, labeler: ingest_grpc.IngestServiceStub
) -> None:
    await stub.ScoreTransaction(request("e2e-label", minutes=-5), timeout=10)
    label = ingest.ReportLabelRequest(transaction_id="e2e-label", is_fraud=True, source="chargeback")
    label.reported_at.FromDatetime(NOW)
    assert (await labeler.ReportLabel(label, timeout=10)).appended
    assert not (await labeler.ReportLabel(label, timeout=10)).appended
    label.transaction_id = "never-seen"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await labeler.ReportLabel(label, timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_pan_is_nowhere_on_disk(platform: Platform, deployed: str, nats_server: object) -> None:
    await score(platform, request("e2e-pan-scan", minutes=-1))
    roots = [platform.var_dir, Path(nats_server.store_dir)]  # type: ignore[attr-defined]
    needles = [PAN.encode(), PAN.encode("utf-16-le")]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                scanned += 1
                assert not any(n in data for n in needles), path
    assert scanned > 0


async def test_a_caller_giving_up_mid_call_leaves_no_half_written_decision(
    platform: Platform, deployed: str, stub: ingest_grpc.IngestServiceStub
) -> None:
    r = request("e2e-cancelled", minutes=-3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ScoreTransaction(r, timeout=0.002)  # gives up before the decision is made
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    response = await stub.ScoreTransaction(r, timeout=10)  # the retry finishes (or replays) the same decision
    assert response.decision != common.DECISION_UNSPECIFIED and response.model.version == deployed
    again = await stub.ScoreTransaction(r, timeout=10)
    assert again.replayed and again.decision == response.decision and again.score == response.score
    for stream, subject in (
        ("TRANSACTIONS", "fraud.tx.received.*.e2e-cancelled"),
        ("FEATURES", "fraud.features.computed.*.e2e-cancelled"),
        ("PREDICTIONS", "fraud.predictions.made.*.e2e-cancelled"),
    ):
        assert await messages(platform, stream, subject) == 1, stream


async def test_grpc_transport_decides_the_same_way_and_shares_the_log(
    platform: Platform, deployed: str, stub: ingest_grpc.IngestServiceStub
) -> None:
    """A second ingest with FRAUD_INTERNAL_TRANSPORT=grpc calls features, then scoring, over gRPC."""
    import os

    from fraudshared.service import start_in_process
    from services.ingest.bootstrap import bootstrap as ingest_bootstrap

    env = {
        "FRAUD_NATS_URL": platform.nats_url,
        "FRAUD_VAR_DIR": str(platform.var_dir),
        "FRAUD_INTERNAL_TRANSPORT": "grpc",
        "FRAUD_FEATURES_ADDR": platform.address("features"),
        "FRAUD_SCORING_ADDR": platform.address("scoring"),
    }
    saved = dict(os.environ)
    os.environ.update(env)  # read by the bootstrap at start only
    try:
        service = await start_in_process("ingest", ingest_bootstrap, wait_ready=True)  # roles read: ready
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        async with aio_channel(service.address, "dev-scorer") as channel:
            over_grpc = ingest_grpc.IngestServiceStub(channel)
            decided = await over_grpc.ScoreTransaction(request("e2e-grpc-hop", minutes=-2), timeout=10)
            assert decided.scoring_path == common.SCORING_PATH_TRITON and not decided.replayed
            assert decided.model.version == deployed
            large = await over_grpc.ScoreTransaction(request("e2e-grpc-large", amount=950_000), timeout=10)
            assert large.decision in (common.DECISION_REVIEW, common.DECISION_DECLINE) and large.reason_codes
    finally:
        await service.stop()
    # The NATS-transport ingest finds the same recorded decision: one log, whichever path made it.
    again = await stub.ScoreTransaction(request("e2e-grpc-hop", minutes=-2), timeout=10)
    assert again.replayed and (again.decision, again.score) == (decided.decision, decided.score)
    for stream, subject in (
        ("TRANSACTIONS", "fraud.tx.received.*.e2e-grpc-hop"),
        ("FEATURES", "fraud.features.computed.*.e2e-grpc-hop"),
        ("PREDICTIONS", "fraud.predictions.made.*.e2e-grpc-hop"),
    ):
        assert await messages(platform, stream, subject) == 1, stream
