"""Requests for the benchmark: synthetic transactions with Luhn-valid PANs, event times in the recent past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudml.datagen import generate


def requests(count: int, run_id: str, seed: int = 11) -> list[ingest.ScoreTransactionRequest]:
    """`count` distinct ScoreTransaction requests in event-time order, shifted to end a minute ago."""
    customers = max(300, count // 20)  # ~2.5 transactions per customer-day over 10 days
    df = generate(n_customers=customers, n_terminals=10 * customers, n_days=10, seed=seed).tail(count)
    shift = datetime.now(UTC) - timedelta(minutes=1) - df.tx_time.max().to_pydatetime()
    out = []
    for row in df.itertuples():
        request = ingest.ScoreTransactionRequest(
            transaction_id=f"{run_id}-{row.tx_id}",
            pan=row.card_pan,
            amount=money_pb2.Money(amount_minor=int(row.amount_minor), currency=row.currency),
            terminal_id=str(row.terminal_id),
            channel=common.CHANNEL_CARD_PRESENT,
        )
        request.event_time.FromDatetime(row.tx_time.to_pydatetime() + shift)
        out.append(request)
    return out
