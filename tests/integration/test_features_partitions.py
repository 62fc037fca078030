"""Features instances as real processes: two partition owners, kill -9 and restart mid-stream.

Reference semantics: each partition owner folds only its partitions' transactions (card state is complete;
terminal counts cover the owner's partitions), so the expected vectors come from one FeatureEngine per owner
fed the same stream in order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest

from fraud.common.v1 import money_pb2
from fraud.features.v1 import feature_service_pb2 as features
from fraudml.datagen import generate
from fraudshared import subjects
from fraudshared.features import FeatureEngine, Transaction
from fraudshared.nats_server import NatsServer
from fraudshared.rpc import RpcClient, RpcError

pytestmark = pytest.mark.integration
OWNERS = {"a": "0-3", "b": "4-7"}


def start_owner(nats_url: str, var_dir: Path, partitions: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FRAUD_NATS_URL": nats_url,
        "FRAUD_VAR_DIR": str(var_dir),
        "FRAUD_FEATURES_PARTITIONS": partitions,
        "FRAUD_FEATURES_SNAPSHOT_EVERY_S": "0.3",
    }
    log = open(var_dir.parent / f"{var_dir.name}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "services.features"], env=env, stderr=log, stdout=log)


async def wait_serving(rpc: RpcClient, partition: int) -> None:
    for _ in range(200):
        try:  # an invalid request is answered (INVALID_ARGUMENT) without touching state
            await rpc.call(subjects.features_rpc_partition(partition), features.ComputeFeaturesRequest(),
                           features.ComputeFeaturesResponse, 0.5)  # fmt: skip
        except RpcError as exc:
            if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no features owner answers partition {partition}")


def owner_of(partition: int) -> str:
    return "a" if partition <= 3 else "b"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own: the session's may have a platform's features instance listening on the
    same request subjects (the e2e tests' session platform), which would answer from its own state."""
    with NatsServer(tmp_path / "nats") as server:
        yield server


async def test_two_owners_split_partitions_and_a_killed_owner_restarts_with_the_same_vectors(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    df = generate(n_customers=300, n_terminals=60, n_days=8, seed=21)
    stream = [
        Transaction.create(f"fp-{r.tx_id}", r.tx_time.to_pydatetime(), f"card-{r.customer_id}", r.terminal_id,
                           int(r.amount_minor))
        for r in df.itertuples()
    ][:1200]  # fmt: skip
    engines = {name: FeatureEngine() for name in OWNERS}
    procs = {name: start_owner(nats_server.url, tmp_path / name, spec) for name, spec in OWNERS.items()}
    nc = await nats.connect(nats_server.url)
    rpc = RpcClient(nc)
    try:
        await wait_serving(rpc, 0)
        await wait_serving(rpc, 7)
        served = {"a": 0, "b": 0}
        for i, tx in enumerate(stream):
            if i == len(stream) // 2:
                procs["a"].send_signal(signal.SIGKILL)  # no graceful snapshot: restart = last snapshot + tail
                procs["a"].wait(timeout=10)
                procs["a"] = start_owner(nats_server.url, tmp_path / "a", OWNERS["a"])
                await wait_serving(rpc, 0)
            owner = owner_of(subjects.partition_of(tx.card_token))
            request = features.ComputeFeaturesRequest(
                transaction_id=tx.tx_id, card_token=tx.card_token, terminal_id=tx.terminal_id,
                amount=money_pb2.Money(amount_minor=tx.amount_minor, currency="EUR"),
            )  # fmt: skip
            request.event_time.FromMicroseconds(tx.event_time_us)
            response = await rpc.call(
                subjects.features_rpc(tx.card_token), request, features.ComputeFeaturesResponse, 5
            )
            expected = engines[owner].score_then_update(tx)
            assert list(response.values) == [float(v) for v in expected], (i, tx.tx_id)
            served[owner] += 1
        assert served["a"] > 100 and served["b"] > 100
        assert list((tmp_path / "a" / "features").glob("snapshot-0-1-2-3.marshal"))
    finally:
        await nc.close()
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=20)
