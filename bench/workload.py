"""The benchmark's workload: synthetic transactions with Luhn-valid PANs, event times in the recent past, and
the model they are scored with (`make bench`, `make bench-ab` and `make resilience` deploy the same one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudctl.demo import to_request
from fraudml.datagen import generate
from fraudml.train import TrainResult, train


def requests(count: int, run_id: str, seed: int = 11) -> list[ingest.ScoreTransactionRequest]:
    """`count` distinct ScoreTransaction requests in event-time order, shifted to end a minute ago."""
    customers = max(300, count // 20)  # ~2.5 transactions per customer-day over 10 days
    df = generate(n_customers=customers, n_terminals=10 * customers, n_days=10, seed=seed).tail(count).copy()
    df["tx_time"] += datetime.now(UTC) - timedelta(minutes=1) - df.tx_time.max().to_pydatetime()
    return [to_request(row, run_id) for row in df.itertuples()]


def train_model() -> TrainResult:
    """Trains the benchmark's model: 35 simulated days of 300 customers, the first 21 for training (seed 7)."""
    return train(generate(n_customers=300, n_terminals=3000, n_days=35, seed=7), train_days=21)
