"""Requests for the benchmark: synthetic transactions with Luhn-valid PANs, event times in the recent past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudctl.demo import to_request
from fraudml.datagen import generate


def requests(count: int, run_id: str, seed: int = 11) -> list[ingest.ScoreTransactionRequest]:
    """`count` distinct ScoreTransaction requests in event-time order, shifted to end a minute ago."""
    customers = max(300, count // 20)  # ~2.5 transactions per customer-day over 10 days
    df = generate(n_customers=customers, n_terminals=10 * customers, n_days=10, seed=seed).tail(count).copy()
    df["tx_time"] += datetime.now(UTC) - timedelta(minutes=1) - df.tx_time.max().to_pydatetime()
    return [to_request(row, run_id) for row in df.itertuples()]
