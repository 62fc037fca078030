"""Delayed labels end to end: ReportLabel -> LABELS -> the features owner folds it (LabelApplied) -> card-v2,
and a later label that corrects it by precedence reaches the features too (an outranked one does not)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import nats
import nats.js.errors
import pytest
from google.protobuf.message import Message

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudml.datagen import synthetic_pan
from fraudshared.events.envelope import from_nats
from fraudshared.features import FEATURE_NAMES
from tests.fixtures.identity import aio_channel
from tests.fixtures.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
M = TypeVar("M", bound=Message)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
ANALYST, CHARGEBACK = events.LABEL_SOURCE_ANALYST, events.LABEL_SOURCE_CHARGEBACK
UNSPECIFIED = events.LABEL_SOURCE_UNSPECIFIED
DAY0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)


def request(tx_id: str, pan: str, terminal: str, at: datetime) -> ingest.ScoreTransactionRequest:
    r = ingest.ScoreTransactionRequest(
        transaction_id=tx_id,
        pan=pan,
        terminal_id=terminal,
        amount=money_pb2.Money(amount_minor=2500, currency="EUR"),
        channel=common.CHANNEL_CARD_PRESENT,
    )
    r.event_time.FromDatetime(at)
    r.terminal_location.latitude, r.terminal_location.longitude = 48.85, 2.35
    return r


async def last(platform: Platform, stream: str, subject: str, kind: type[M], wait_s: float = 10.0) -> M:
    nc = await nats.connect(platform.nats_url)
    try:
        for _ in range(int(wait_s * 20)):
            try:
                raw = await nc.jetstream().get_last_msg(stream, subject)
                return from_nats(raw.headers, raw.data).payload(kind)
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.05)
        raise AssertionError(f"nothing on {subject} within {wait_s} s")
    finally:
        await nc.close()


async def test_a_reported_fraud_raises_terminal_risk_and_the_cards_known_frauds(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    terminal, fraud_card, other_card = f"T-LBL-{run}", synthetic_pan(880001), synthetic_pan(880002)
    ingest_address = platform.address("ingest")
    async with aio_channel(ingest_address, "dev-scorer") as channel, aio_channel(ingest_address, "dev-labeler") as lc:
        stub = ingest_grpc.IngestServiceStub(channel)
        await stub.ScoreTransaction(request(f"lb-{run}-1", fraud_card, terminal, DAY0 + timedelta(hours=1)))
        label = ingest.ReportLabelRequest(transaction_id=f"lb-{run}-1", is_fraud=True, source="chargeback")
        label.reported_at.FromDatetime(DAY0 + timedelta(days=7, hours=1))
        assert (await ingest_grpc.IngestServiceStub(lc).ReportLabel(label, timeout=10)).appended

        applied = await last(platform, "FEATURES", f"fraud.features.label.*.lb-{run}-1.*", events.LabelApplied)
        assert applied.is_fraud and applied.terminal_id == terminal and applied.subject_id and not applied.card_token
        assert applied.principal == "user:dev-labeler"  # the caller, never a request field

        later = DAY0 + timedelta(days=8)  # the delayed 1-day window (t - 8d, t - 7d] holds the first transaction
        await stub.ScoreTransaction(request(f"lb-{run}-2", other_card, terminal, later), timeout=10)
        await stub.ScoreTransaction(request(f"lb-{run}-3", fraud_card, f"{terminal}-b", later), timeout=10)
    other = await last(platform, "FEATURES", f"fraud.features.computed.*.lb-{run}-2", events.FeatureVectorComputed)
    assert other.values[COL["terminal_delayed_tx_count_1d"]] == 1
    assert other.values[COL["terminal_risk_1d"]] == 1.0 and other.values[COL["terminal_risk_7d"]] == 1.0
    assert other.values[COL["card_known_frauds_30d"]] == 0
    same = await last(platform, "FEATURES", f"fraud.features.computed.*.lb-{run}-3", events.FeatureVectorComputed)
    assert same.values[COL["card_known_frauds_30d"]] == 1  # the card's own reported fraud
    assert same.values[COL["card_terminal_distance_km"]] == pytest.approx(0.0, abs=1e-3)  # same place as before


async def count(platform: Platform, stream: str, subject: str) -> int:
    nc = await nats.connect(platform.nats_url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


def label_request(tx_id: str, is_fraud: bool, source: int, reported: datetime) -> ingest.ReportLabelRequest:
    r = ingest.ReportLabelRequest(transaction_id=tx_id, is_fraud=is_fraud, source="case-e2e", label_source=source)
    r.reported_at.FromDatetime(reported)
    return r


async def test_a_correction_reaches_the_features_and_an_outranked_label_does_not(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    terminal, card, other_card = f"T-COR-{run}", synthetic_pan(880011), synthetic_pan(880012)
    tx, marker = f"co-{run}-1", f"co-{run}-m"
    reported = DAY0 + timedelta(days=7, hours=1)
    async with aio_channel(platform.address("ingest"), "dev-scorer") as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        await stub.ScoreTransaction(request(tx, card, terminal, DAY0 + timedelta(hours=1)), timeout=10)
        await stub.ScoreTransaction(request(marker, other_card, f"{terminal}-m", DAY0 + timedelta(hours=2)), timeout=10)
    # An analyst's first word (source unspecified); the chargeback feed (a labeler) corrects it; the analyst's
    # verdict as an analyst is then outranked by the chargeback; its retry records nothing.
    async with (
        aio_channel(platform.address("ingest"), "dev-analyst") as analyst_channel,
        aio_channel(platform.address("ingest"), "dev-labeler") as labeler_channel,
    ):
        analyst = ingest_grpc.IngestServiceStub(analyst_channel)
        labeler = ingest_grpc.IngestServiceStub(labeler_channel)
        first = await analyst.ReportLabel(label_request(tx, True, UNSPECIFIED, reported), timeout=10)
        assert first.outcome == ingest.LABEL_OUTCOME_FIRST
        corrected = await labeler.ReportLabel(label_request(tx, False, CHARGEBACK, reported), timeout=10)
        assert corrected.outcome == ingest.LABEL_OUTCOME_CORRECTION and not corrected.is_fraud_in_force
        outranked = await analyst.ReportLabel(label_request(tx, True, ANALYST, reported), timeout=10)
        assert outranked.outcome == ingest.LABEL_OUTCOME_OUTRANKED and outranked.appended
        retry = await analyst.ReportLabel(label_request(tx, True, ANALYST, reported), timeout=10)
        assert retry.outcome == ingest.LABEL_OUTCOME_DUPLICATE and not retry.appended
        # Labels reach features in LABELS order: once the marker's label is applied, so is all of tx's.
        await analyst.ReportLabel(label_request(marker, True, ANALYST, reported), timeout=10)
    await last(platform, "FEATURES", f"fraud.features.label.*.{marker}.*", events.LabelApplied)
    assert await count(platform, "LABELS", f"fraud.labels.reported.{tx}") == 3  # first, correction, outranked
    assert await count(platform, "FEATURES", f"fraud.features.label.*.{tx}.*") == 2  # first and correction
    in_force = await last(platform, "FEATURES", f"fraud.features.label.*.{tx}.*", events.LabelApplied)
    assert not in_force.is_fraud and in_force.principal == "user:dev-labeler"

    later = DAY0 + timedelta(days=8)  # the delayed window holds tx: its corrected label counts as genuine
    async with aio_channel(platform.address("ingest"), "dev-scorer") as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        await stub.ScoreTransaction(request(f"co-{run}-2", card, f"{terminal}-b", later), timeout=10)
        await stub.ScoreTransaction(request(f"co-{run}-3", other_card, terminal, later), timeout=10)
    same = await last(platform, "FEATURES", f"fraud.features.computed.*.co-{run}-2", events.FeatureVectorComputed)
    assert same.values[COL["card_known_frauds_30d"]] == 0
    other = await last(platform, "FEATURES", f"fraud.features.computed.*.co-{run}-3", events.FeatureVectorComputed)
    assert other.values[COL["terminal_delayed_tx_count_1d"]] == 1 and other.values[COL["terminal_risk_1d"]] == 0.0
