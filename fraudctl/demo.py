"""`fraudctl demo`: the walking skeleton, every hop real.

up (nats-server, tritonserver, five services) -> generate a synthetic card history -> train LightGBM ->
ONNX -> register, approve and deploy to Triton through the governance service -> stream transactions
through IngestService.ScoreTransaction over gRPC -> print decisions, latency, events per stream -> down.

Each step calls as the development principal whose role it needs (`fraudctl up` issued and granted them):
model-owner registers and deploys, approver and approver-2 sign off (four eyes), scorer streams the
transactions, labeler reports the chargebacks, and the auditor (read-only) counts the events on NATS.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats
import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.governance.v1 import governance_service_pb2 as gov
from fraud.governance.v1 import governance_service_pb2_grpc as gov_grpc
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl import caller, runtime
from fraudctl.model_messages import register_request
from fraudctl.procfile import Plan
from fraudml.artifacts import build_metadata
from fraudml.datagen import generate
from fraudml.lineage import code_revision
from fraudml.train import TrainResult, train
from fraudshared.events.streams import default_specs
from fraudshared.features import LABEL_DELAY_DAYS

MODEL_NAME = "card-fraud-gbdt"
LABEL_DELAY = pd.Timedelta(days=LABEL_DELAY_DAYS)


@dataclass
class DemoResult:
    """What the demo measured; printed as tables and asserted by the e2e test."""

    model_version: str = ""
    deploy_ms: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    decisions: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    stream_counts: dict[str, int] = field(default_factory=dict)
    pans: set[str] = field(default_factory=set)
    labels_reported: int = 0


def to_request(row: pd.Series, run_id: str) -> ingest.ScoreTransactionRequest:
    request = ingest.ScoreTransactionRequest(
        transaction_id=f"{run_id}-{row.tx_id}",
        pan=row.card_pan,
        amount=money_pb2.Money(amount_minor=int(row.amount_minor), currency=row.currency),
        terminal_id=str(row.terminal_id),
        channel=common.CHANNEL_CARD_PRESENT,
    )
    request.event_time.FromDatetime(row.tx_time.to_pydatetime())
    if not np.isnan(row.terminal_lat):
        request.terminal_location.latitude, request.terminal_location.longitude = row.terminal_lat, row.terminal_lon
    return request


async def report_due_labels(address: str, var_dir: Path, frauds: pd.DataFrame, now: pd.Timestamp, run_id: str) -> int:
    """Report (as the labeler) the chargebacks of streamed frauds whose label delay has passed by time `now`."""
    due = frauds[frauds["tx_time"] + LABEL_DELAY <= now]
    async with caller.aio_channel(address, var_dir, "labeler") as ch:
        stub = ingest_grpc.IngestServiceStub(ch)
        for row in due.itertuples():
            request = ingest.ReportLabelRequest(  # the labeler plays the chargeback feed
                transaction_id=f"{run_id}-{row.tx_id}",
                is_fraud=True,
                source="demo",
                label_source=events.LABEL_SOURCE_CHARGEBACK,
            )
            request.reported_at.FromDatetime((row.tx_time + LABEL_DELAY).to_pydatetime())
            await stub.ReportLabel(request, timeout=5.0)
    return len(due)


async def stream_with_labels(address: str, var_dir: Path, tail: pd.DataFrame, run_id: str, out: DemoResult) -> None:
    """Stream day by day; after each day, report the labels that became due (the label delay has passed)."""
    frauds = tail[tail["is_fraud"] == 1]
    for day, rows in tail.groupby(tail["tx_time"].dt.floor("D"), sort=True):
        await stream(address, var_dir, [to_request(row, run_id) for row in rows.itertuples()], 16, out)
        reported = await report_due_labels(address, var_dir, frauds, day + pd.Timedelta(days=1), run_id)
        frauds = frauds[frauds["tx_time"] + LABEL_DELAY > day + pd.Timedelta(days=1)]
        out.labels_reported += reported


async def deploy(address: str, var_dir: Path, result: TrainResult) -> tuple[str, float]:
    """Register -> approve (twice) -> deploy as champion; returns the version and register->serving milliseconds.

    The model-owner registers and deploys; approver and approver-2 are the four eyes (neither the registrant).
    """
    options = [("grpc.max_send_message_length", 64 << 20)]
    async with caller.aio_channel(address, var_dir, "model-owner", options=options) as ch:
        stub = gov_grpc.GovernanceServiceStub(ch)
        existing = await stub.ListModels(gov.ListModelsRequest(model_name=MODEL_NAME))
        version = f"1.0.{len(existing.models)}"
        metadata = build_metadata(
            result, model_name=MODEL_NAME, version=version, dataset={"source": "demo"}, code_revision=code_revision()
        )
        request = register_request(
            metadata, result.model_onnx_bytes, result.explainer_model_text.encode(), name=MODEL_NAME, version=version
        )
        started = time.perf_counter()
        await stub.RegisterModel(request)
        for approver in ("approver", "approver-2"):  # four eyes: two approvers, not the registrant
            async with caller.aio_channel(address, var_dir, approver) as approving:
                approve = gov.ApproveModelRequest(model_name=MODEL_NAME, version=version)
                await gov_grpc.GovernanceServiceStub(approving).ApproveModel(approve)
        await stub.DeployModel(
            gov.DeployModelRequest(model_name=MODEL_NAME, version=version, role=model_events.DEPLOYMENT_ROLE_CHAMPION)
        )
        return version, (time.perf_counter() - started) * 1000


async def stream(
    address: str, var_dir: Path, requests: list[ingest.ScoreTransactionRequest], concurrency: int, out: DemoResult
) -> None:
    """Send (as the scorer) every request through ScoreTransaction with at most `concurrency` in flight."""
    queue: asyncio.Queue[ingest.ScoreTransactionRequest] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    with Progress(transient=True) as progress:
        task = progress.add_task("scoring transactions", total=len(requests))
        async with caller.aio_channel(address, var_dir, "scorer") as ch:
            stub = ingest_grpc.IngestServiceStub(ch)

            async def worker() -> None:
                while not queue.empty():
                    request = queue.get_nowait()
                    t0 = time.perf_counter()
                    try:
                        response = await stub.ScoreTransaction(request, timeout=5.0)
                    except grpc.aio.AioRpcError as exc:
                        out.errors[exc.code().name] += 1
                    else:
                        out.latencies_ms.append((time.perf_counter() - t0) * 1000)
                        out.decisions[common.Decision.Name(response.decision).removeprefix("DECISION_")] += 1
                        out.paths[common.ScoringPath.Name(response.scoring_path).removeprefix("SCORING_PATH_")] += 1
                    progress.advance(task)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            out.elapsed_s += time.perf_counter() - started


async def count_events(nats_url: str, var_dir: Path) -> dict[str, int]:
    """Messages per stream, read as the auditor (read-only) over TLS."""
    nc = await nats.connect(nats_url, **caller.nats_tls(var_dir, caller.READ_ONLY))
    try:
        js = nc.jetstream()
        return {spec.name: (await js.stream_info(spec.name)).state.messages for spec in default_specs()}
    finally:
        await nc.close()


async def run_with_plan(plan: Plan, console: Console, transactions: int, customers: int, days: int) -> DemoResult:
    out = DemoResult()
    with console.status("generating a synthetic card history"):
        df = generate(n_customers=customers, n_terminals=10 * customers, n_days=days, seed=7)
    console.print(f"generated {len(df):,} transactions over {days} days, fraud rate {df.is_fraud.mean():.2%}")
    with console.status("training LightGBM and exporting ONNX"):
        result = await asyncio.to_thread(train, df, train_days=days - 14, delay_days=7, test_days=7)
    out.metrics = result.metrics
    for label, metrics in (("LightGBM", result.metrics), ("random forest", result.baseline_metrics)):
        shown = {k: metrics[k] for k in ("auc_roc", "average_precision", "card_precision_at_100") if k in metrics}
        console.print(f"{label}: " + ", ".join(f"{k}={v:.3f}" for k, v in shown.items()))
    with console.status("registering, approving and deploying to Triton"):
        out.model_version, out.deploy_ms = await deploy(plan.address("governance"), plan.var_dir, result)
    console.print(f"{MODEL_NAME} {out.model_version} serving in Triton {out.deploy_ms:.0f} ms after registration")
    await asyncio.sleep(1.0)  # scoring follows the MODELS stream; give it a moment to see the new champion
    tail = df.tail(transactions)
    out.pans = set(tail.card_pan)
    run_id = uuid.uuid4().hex[:8]
    await stream_with_labels(plan.address("ingest"), plan.var_dir, tail, run_id, out)
    out.stream_counts = await count_events(plan.env["FRAUD_NATS_URL"], plan.var_dir)
    return out


def render(out: DemoResult, console: Console) -> None:
    lat = np.asarray(out.latencies_ms) if out.latencies_ms else np.zeros(1)
    table = Table(title=f"ScoreTransaction over gRPC, model {MODEL_NAME} {out.model_version}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for decision in ("APPROVE", "REVIEW", "DECLINE"):
        table.add_row(f"decisions {decision}", f"{out.decisions.get(decision, 0):,}")
    for path, count in sorted(out.paths.items()):
        table.add_row(f"scoring path {path}", f"{count:,}")
    for code, count in sorted(out.errors.items()):
        table.add_row(f"errors {code}", f"{count:,}")
    table.add_row("latency p50 (ms)", f"{np.percentile(lat, 50):.2f}")
    table.add_row("latency p99 (ms)", f"{np.percentile(lat, 99):.2f}")
    table.add_row("throughput (tx/s, 16 in flight)", f"{len(out.latencies_ms) / max(out.elapsed_s, 1e-9):.0f}")
    table.add_row("register -> serving (ms)", f"{out.deploy_ms:.0f}")
    table.add_row(f"fraud labels reported ({LABEL_DELAY_DAYS} days after the transaction)", f"{out.labels_reported:,}")
    for name, count in out.stream_counts.items():
        table.add_row(f"events in {name}", f"{count:,}")
    console.print(table)


def audit_verify(var_dir: Path, console: Console) -> None:
    """Show the audit trail at work: `fraudctl audit verify` over the streams the demo just wrote.

    The notary seals every FRAUD_NOTARY_EVERY_N events or FRAUD_NOTARY_EVERY_S seconds, so the newest events
    of a short run are reported as not yet sealed; everything sealed is re-hashed and its signature checked.
    """
    cmd = [sys.executable, "-m", "fraudctl", "--as", "auditor", "audit", "verify", "--var-dir", str(var_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    console.print(done.stdout.rstrip() or done.stderr.rstrip(), markup=False, highlight=False)


def run_demo(
    var_dir: Path,
    console: Console,
    transactions: int = 7000,
    customers: int = 400,
    days: int = 35,
    keep_up: bool = False,
) -> DemoResult:
    """Run the whole skeleton; the platform is stopped at the end unless `keep_up`."""
    plan = runtime.up(var_dir, console=console)
    try:
        try:
            out = asyncio.run(run_with_plan(plan, console, transactions, customers, days))
        except grpc.aio.AioRpcError as exc:
            raise runtime.RuntimeErrorWithHint(f"demo: {caller.explain_rpc_error(exc)}") from None
        render(out, console)
        audit_verify(var_dir, console)
        return out
    finally:
        if not keep_up:
            runtime.down(var_dir, console=console)
