"""`make bench`: the platform under open-loop and closed-loop load, against a bare baseline, same run.

Starts the platform with `fraudctl up` in build/bench-var, deploys a freshly trained model through
governance, runs the load generator as a separate process, measures the baseline in this process, writes
bench/results/<UTC timestamp>.json and prints a table. Security is on, as in production: every call is mTLS
(the load generator presents user:dev-scorer's certificate from build/bench-var/credentials/scorer), and
the bare baseline serves TLS with a client certificate required and writes to a JetStream behind TLS.

Capacity at SLO (bench/capacity.py): the highest open-loop rate at which p99 stays under 25 ms with no
error, searched for the platform and for the bare baseline in the same run; their ratio is reported too.

Max throughput is found the same way for the platform and for the baselines: a closed loop at each
concurrency of `--concurrency` in turn (16, 32, 64, 128 in flight by default); the best step that answered
every request is the max. A fixed concurrency measured the platform below its capacity: it batches more as
more is in flight (45-56% more throughput at 128 than at 16 in the first runs), the one-process baseline
much less (5-17%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import baseline
from bench.capacity import SLO_P99_MS, capacity_at_slo
from bench.stats import RunStats
from bench.workload import requests as make_requests
from bench.workload import train_model
from fraudctl import runtime
from fraudctl.demo import MODEL_NAME, deploy
from fraudctl.procfile import Plan
from fraudml.train import TrainResult
from services.governance.domain.model import triton_model_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def loadgen(target: str, var_dir: Path, *args: str) -> RunStats:
    """One run of the load generator as user:dev-scorer (the credential `fraudctl up` issued in `var_dir`)."""
    credential = ("--as", "scorer", "--var-dir", str(var_dir))
    cmd = [sys.executable, "-m", "bench.loadgen", "--target", target, *credential, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return RunStats(**json.loads(done.stdout.strip().splitlines()[-1]))


def max_throughput(step: Callable[[int], RunStats], concurrencies: Sequence[int]) -> tuple[RunStats, list[RunStats]]:
    """Runs `step` at each concurrency in turn; returns the best clean step and every step run.

    A clean step answered every request, none in safe mode (``degraded``): past capacity the platform sheds
    or degrades, and such a step ends the sweep. If even the first step is not clean, it is the result.
    """
    runs: list[RunStats] = []
    for concurrency in concurrencies:
        run = step(concurrency)
        runs.append(run)
        if run.errors or run.decisions.get("degraded"):
            break
    clean = [run for run in runs if not run.errors and not run.decisions.get("degraded")] or runs[:1]
    return max(clean, key=lambda run: run.throughput), runs


def _concurrencies(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"concurrencies must be >= 1, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop offered rate (tx/s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the open-loop run")
    parser.add_argument(
        "--concurrency", type=_concurrencies, default=[16, 32, 64, 128],
        help="closed-loop requests in flight, one step each (comma-separated); the best clean step is the max",
    )  # fmt: skip
    parser.add_argument("--step-seconds", type=float, default=10.0, help="duration of each platform closed-loop step")
    parser.add_argument("--baseline-seconds", type=float, default=5.0, help="duration of each baseline step")
    parser.add_argument(
        "--slo-seconds", type=float, default=10.0,
        help=f"duration of each open-loop step of the capacity-at-SLO search (p99 < {SLO_P99_MS:g} ms); 0 skips it",
    )  # fmt: skip
    parser.add_argument("--var-dir", type=Path, default=ROOT / "build" / "bench-var")
    opts = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)
    shutil.rmtree(opts.var_dir, ignore_errors=True)
    plan = runtime.up(opts.var_dir, console=console)
    try:
        with console.status("training and deploying the benchmark model"):
            result = train_model()
            version, deploy_ms = asyncio.run(deploy(plan.address("governance"), opts.var_dir, result))
        report = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": _cpus()},
            "model_version": version,
            "register_to_serving_ms": round(deploy_ms, 1),
            "offered_rate": opts.rate,
            "security": "mTLS on every gRPC call and NATS link, the baseline's included",
            **measure(plan, opts, result, version, console),
        }
    finally:
        runtime.down(opts.var_dir, console=console)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{report['timestamp'].replace(':', '').replace('+0000', 'Z')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    render(report, console)
    console.print(f"written {path.relative_to(ROOT)}")
    print(json.dumps(report))


def measure(
    plan: Plan, opts: argparse.Namespace, result: TrainResult, version: str, console: Console
) -> dict[str, Any]:
    """The platform's runs (the load generator as user:dev-scorer), then the bare baselines' (TLS too)."""
    load = partial(loadgen, plan.address("ingest"), opts.var_dir)
    load("--mode", "closed", "--concurrency", "8", "--seconds", "3", "--seed", "5")  # warm-up
    with console.status(f"open loop at {opts.rate:.0f} tx/s"):
        open_run = load("--mode", "open", "--rate", str(opts.rate), "--seconds", str(opts.seconds))
    with console.status("closed loop, stepping up the requests in flight"):
        closed_run, closed_steps = max_throughput(
            lambda c: load(
                "--mode", "closed", "--concurrency", str(c), "--seconds", str(opts.step_seconds), "--seed", str(13 + c)
            ),
            opts.concurrency,
        )  # fmt: skip
    slo = opts.slo_seconds > 0
    if slo:
        with console.status(f"capacity at SLO (p99 < {SLO_P99_MS:g} ms): the platform"):
            platform_slo = capacity_at_slo(
                lambda r: load("--mode", "open", "--rate", f"{r:.1f}", "--seconds", str(opts.slo_seconds)),
                start=max(10.0, closed_run.throughput / 2),
            )
    model = opts.var_dir / "bench-model.onnx"
    model.write_bytes(result.model_onnx_bytes)
    credentials = baseline.issue_credentials(opts.var_dir / "baseline-pki")
    with baseline.own_nats(opts.var_dir / "baseline-nats", credentials) as nats_url:
        bare = partial(baseline.main_sync, nats_url, model, len(result.feature_names), credentials=credentials)
        with console.status("bare baseline"):
            base, base_steps = max_throughput(
                lambda c: bare(make_requests(2000, f"base{c}"), concurrency=c, seconds=opts.baseline_seconds),
                opts.concurrency,
            )
        if slo:
            with console.status(f"capacity at SLO (p99 < {SLO_P99_MS:g} ms): the bare baseline"):
                base_slo = capacity_at_slo(
                    lambda r: bare(make_requests(2000, f"slo{r:.0f}"), rate=r, seconds=opts.slo_seconds),
                    start=max(10.0, base.throughput / 2),
                )
        with console.status("bare baseline with Triton"):
            triton = (plan.env["FRAUD_TRITON_GRPC_URL"], triton_model_name(MODEL_NAME, version))
            base_triton, triton_steps = max_throughput(
                lambda c: bare(make_requests(2000, f"bt{c}"), triton, concurrency=c, seconds=opts.baseline_seconds),
                opts.concurrency,
            )
    measured: dict[str, Any] = {
        "p99_ms": round(open_run.p99_ms, 2),
        "ratio_to_baseline": round(closed_run.throughput / base.throughput, 3) if base.throughput else 0.0,
        # Informative: the platform against the same bare loop once inference goes through Triton.
        "ratio_to_baseline_with_triton": (
            round(closed_run.throughput / base_triton.throughput, 3) if base_triton.throughput else 0.0
        ),
        # The open loop, then the max of each closed-loop sweep (platform, baseline, baseline with Triton).
        "runs": [open_run.to_dict(), closed_run.to_dict(), base.to_dict(), base_triton.to_dict()],
        "closed_loop_steps": [run.to_dict() for run in (*closed_steps, *base_steps, *triton_steps)],
    }
    if slo:
        measured["capacity_at_slo"] = {
            "p99_target_ms": SLO_P99_MS,
            "platform": platform_slo.to_dict(),
            "baseline": base_slo.to_dict(),
            "ratio": round(platform_slo.rate / base_slo.rate, 3) if base_slo.rate else 0.0,
        }
    return measured


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
    steps = report.get("closed_loop_steps", [])  # results written before the sweep have none
    best = {run["name"] for run in report["runs"][1:]} if steps else set()
    for run in [report["runs"][0], *(steps or report["runs"][1:])]:
        name = run["name"] + (" (max)" if run["name"] in best else "")
        table.add_row(
            name, str(run["ok"]), json.dumps(run["errors"]) if run["errors"] else "0",
            f"{run['throughput']:.0f}", f"{run['p50_ms']:.2f}", f"{run['p95_ms']:.2f}", f"{run['p99_ms']:.2f}",
            f"{run['p999_ms']:.2f}", ", ".join(f"{k}={v}" for k, v in sorted(run["decisions"].items())),
        )  # fmt: skip
    console.print(table)
    slo = report.get("capacity_at_slo")  # results written before it have none
    if slo:
        console.print(capacity_line(slo))


def capacity_line(slo: dict[str, Any]) -> str:
    """One line: each system's capacity at SLO, with the rate that missed (or '+' when none did) and the ratio."""

    def one(found: dict[str, Any]) -> str:
        missed = f", missed at {found['missed']:.0f}" if found["missed"] is not None else "+ (no step missed)"
        return f"{found['rate']:.0f} tx/s{missed}"

    return (
        f"capacity at SLO (open loop, p99 < {slo['p99_target_ms']:g} ms, 0 errors): "
        f"platform {one(slo['platform'])}; baseline with TLS {one(slo['baseline'])}; ratio {slo['ratio']}"
    )


if __name__ == "__main__":
    main()
