"""`make bench`: the platform under open-loop and closed-loop load, against a bare baseline, same run.

Starts the platform with `fraudctl up` in build/bench-var, deploys a freshly trained model through
governance, runs the load generator as a separate process, measures the baseline in this process, writes
bench/results/<UTC timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import baseline
from bench.stats import RunStats
from bench.workload import requests as make_requests
from fraudctl import runtime
from fraudctl.demo import MODEL_NAME, deploy
from fraudml.datagen import generate
from fraudml.train import train
from services.governance.domain.model import triton_model_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def loadgen(target: str, *args: str) -> RunStats:
    cmd = [sys.executable, "-m", "bench.loadgen", "--target", target, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return RunStats(**json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop offered rate (tx/s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each platform run")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop requests in flight")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "build" / "bench-var")
    opts = parser.parse_args()
    console = Console()
    shutil.rmtree(opts.var_dir, ignore_errors=True)
    plan = runtime.up(opts.var_dir, console=console)
    try:
        with console.status("training and deploying the benchmark model"):
            result = train(generate(n_customers=300, n_terminals=3000, n_days=35, seed=7), train_days=21)
            version, deploy_ms = asyncio.run(deploy(plan.address("governance"), result, console))
        ingest = plan.address("ingest")
        loadgen(ingest, "--mode", "closed", "--concurrency", "8", "--seconds", "3", "--seed", "5")  # warm-up
        with console.status(f"open loop at {opts.rate:.0f} tx/s"):
            open_run = loadgen(ingest, "--mode", "open", "--rate", str(opts.rate), "--seconds", str(opts.seconds))
        with console.status(f"closed loop, {opts.concurrency} in flight"):
            closed_run = loadgen(
                ingest, "--mode", "closed", "--concurrency", str(opts.concurrency), "--seconds", str(opts.seconds),
                "--seed", "13",
            )  # fmt: skip
        with console.status("bare baseline"):
            model = opts.var_dir / "bench-model.onnx"
            model.write_bytes(result.model_onnx_bytes)
            base = baseline.main_sync(
                plan.env["FRAUD_NATS_URL"], model, len(result.feature_names), make_requests(2000, "base")
            )
        with console.status("bare baseline with Triton"):
            triton = (plan.env["FRAUD_TRITON_GRPC_URL"], triton_model_name(MODEL_NAME, version))
            base_triton = baseline.main_sync(
                plan.env["FRAUD_NATS_URL"], model, len(result.feature_names), make_requests(2000, "bt"), triton
            )
    finally:
        runtime.down(opts.var_dir, console=console)
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus()},
        "model_version": version,
        "register_to_serving_ms": round(deploy_ms, 1),
        "offered_rate": opts.rate,
        "p99_ms": round(open_run.p99_ms, 2),
        "ratio_to_baseline": round(closed_run.throughput / base.throughput, 3) if base.throughput else 0.0,
        # Informative: the platform against the same bare loop once inference goes through Triton.
        "ratio_to_baseline_with_triton": (
            round(closed_run.throughput / base_triton.throughput, 3) if base_triton.throughput else 0.0
        ),
        "runs": [open_run.to_dict(), closed_run.to_dict(), base.to_dict(), base_triton.to_dict()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{report['timestamp'].replace(':', '').replace('+0000', 'Z')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    render(report, console)
    console.print(f"written {path.relative_to(ROOT)}")
    print(json.dumps(report))


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def render(report: dict[str, Any], console: Console) -> None:
    title = (
        f"ScoreTransaction benchmark (p99 at {report['offered_rate']:.0f} tx/s = {report['p99_ms']} ms; "
        f"closed-loop / baseline = {report['ratio_to_baseline']}; "
        f"/ baseline with Triton = {report.get('ratio_to_baseline_with_triton', '-')})"
    )
    table = Table(title=title)
    for column in ("run", "ok", "errors", "tx/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "decisions"):
        table.add_column(column, justify="left" if column in ("run", "decisions", "errors") else "right")
    for run in report["runs"]:
        table.add_row(
            run["name"], str(run["ok"]), json.dumps(run["errors"]) if run["errors"] else "0",
            f"{run['throughput']:.0f}", f"{run['p50_ms']:.2f}", f"{run['p95_ms']:.2f}", f"{run['p99_ms']:.2f}",
            f"{run['p999_ms']:.2f}", ", ".join(f"{k}={v}" for k, v in sorted(run["decisions"].items())),
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
