"""`make bench-ab BASE=<git rev>`: this checkout against another revision, both running at once.

Runs of the same code on this shared 2-core machine differ by up to 1.7x (the machine's speed drifts), so
sequential runs of two versions cannot show a 5% change. Here both platforms are up at the same time and one
load generator alternates requests between them: every pair of requests meets the same machine, and the two
latency distributions compare like with like. `BASE` is checked out into build/ab-<rev> (a git worktree,
sharing this venv and this checkout's generated code, so it must not differ in protos; it is kept for the
next run, and `git worktree remove build/ab-<rev>` or `make clean` removes it).

Phases: one in flight (pure latency, no queueing), then an open loop at `--rate` in all (half to each).
Each phase also reports each platform's CPU per decision (all its processes, from /proc, in the same time
window), the measure of cost that survives the machine's drift. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from bench.stats import RunStats
from bench.workload import requests as make_requests
from bench.workload import train_model
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl.demo import deploy
from fraudctl.processes import argv, cpu_time, our_processes
from fraudctl.procfile import Paths, load_plan
from fraudshared.identity.client import resolve_credential, secure_aio_channel

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 200


def worktree(rev: str) -> Path:
    """A checkout of `rev` under build/, with this checkout's venv and generated code."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True)
    path = ROOT / "build" / f"ab-{sha.stdout.strip()}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True)
        shutil.copytree(ROOT / "gen", path / "gen")
        (path / ".venv").symlink_to(ROOT / ".venv")
    return path


def process_label(pid: int) -> str:
    """What a process of the platform is: ``ingest`` for ``python -m services.ingest``, else its module or binary."""
    args = argv(pid)
    if args and Path(args[0]).name.startswith("python") and "-m" in args[:-1]:
        return args[args.index("-m") + 1].removeprefix("services.").rsplit(".", 1)[-1]
    return Path(args[0]).name if args else "?"


def cpu_by_process(var_dir: Path) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live processes of the platform in `var_dir`, by label."""
    used: dict[str, float] = {}
    for pid in our_processes(Paths(var_dir.resolve())):
        label = process_label(pid)
        used[label] = used.get(label, 0.0) + (cpu_time(pid) or 0.0)
    return used


def used_since(before: dict[str, float], now: dict[str, float]) -> dict[str, float]:
    """CPU seconds each label used between two readings (a process that ended meanwhile drops out, as it did)."""
    return {label: now[label] - before.get(label, 0.0) for label in now if now[label] > before.get(label, 0.0)}


def scorer_channel(address: str, var_dir: Path) -> grpc.aio.Channel:
    """A channel to ingest as the platform's scorer credential; plaintext to a revision that issued none (pre-TLS)."""
    if not (var_dir / "credentials" / "scorer").is_dir():
        return grpc.aio.insecure_channel(address)
    return secure_aio_channel(address, resolve_credential("scorer", var_dir))


def fraudctl(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "fraudctl", *args], cwd=root, check=True, capture_output=True)


class Pair:
    """Sends each pair of requests to both platforms, first one then the other in turn; keeps them apart.

    Swapping which platform goes first in each pair matters: with a fixed order, an A/A run of the same code
    came out 1.5-2% cheaper on the second platform.
    """

    def __init__(self, stubs: list[ingest_grpc.IngestServiceStub], reqs: list[ingest.ScoreTransactionRequest]):
        self.stubs, self.reqs, self.next = stubs, reqs, 0
        self.latencies: list[list[float]] = [[], []]
        self.errors: list[Counter[str]] = [Counter(), Counter()]

    async def send(self, started: float | None = None) -> None:
        i = self.next
        self.next += 1
        k = (i + i // 2) % 2  # 0 1 1 0 0 1 1 0 ...
        t0 = time.perf_counter() if started is None else started
        try:
            await self.stubs[k].ScoreTransaction(self.reqs[i % len(self.reqs)], timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            self.errors[k][exc.code().name] += 1
        else:
            self.latencies[k].append((time.perf_counter() - t0) * 1000)

    def stats(
        self, label: str, seconds: float, names: list[str], cpu: list[dict[str, float]]
    ) -> list[tuple[RunStats, dict[str, float]]]:
        """Each platform's run and its CPU milliseconds per decision by process (key "all": the sum)."""
        runs = []
        for k in (0, 1):
            run = RunStats.build(f"{names[k]}: {label}", self.latencies[k], seconds, self.errors[k], Counter())
            per_decision = {name: 1000 * used / max(1, run.ok) for name, used in sorted(cpu[k].items())}
            runs.append((run, {"all": sum(per_decision.values()), **per_decision}))
        return runs


async def one_in_flight(pair: Pair, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        await pair.send()


async def open_loop(pair: Pair, seconds: float, rate: float) -> None:
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for k in range(int(rate * seconds)):
        scheduled = start + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(pair.send(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def measure(
    addresses: list[str], var_dirs: list[Path], names: list[str], seconds: float, rate: float
) -> list[tuple[RunStats, dict[str, float]]]:
    reqs = make_requests(int(rate * seconds * 2) + 2000, os.urandom(4).hex())
    channels = [scorer_channel(address, var) for address, var in zip(addresses, var_dirs, strict=True)]
    results: list[tuple[RunStats, dict[str, float]]] = []
    try:
        stubs = [ingest_grpc.IngestServiceStub(channel) for channel in channels]
        pair = Pair(stubs, reqs)
        for _ in range(WARM_UP):
            await pair.send()
        phases: list[tuple[str, Callable[[Pair], Coroutine[Any, Any, None]]]] = [
            ("one in flight", lambda p: one_in_flight(p, seconds)),
            (f"open loop {rate / 2:.0f} tx/s each", lambda p: open_loop(p, seconds, rate)),
        ]
        for label, phase in phases:
            pair.latencies, pair.errors = [[], []], [Counter(), Counter()]
            cpu_before = [cpu_by_process(var) for var in var_dirs]
            started = time.perf_counter()
            await phase(pair)
            cpu = [used_since(before, cpu_by_process(var)) for var, before in zip(var_dirs, cpu_before, strict=True)]
            results += pair.stats(label, time.perf_counter() - started, names, cpu)
    finally:
        for channel in channels:
            await channel.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each phase")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop rate over both platforms")
    opts = parser.parse_args()
    console = Console()
    base = worktree(opts.base)
    roots, names = [base, ROOT], [f"base {opts.base}", "this checkout"]
    var_dirs = [ROOT / "build" / f"ab-var-{k}" for k in (0, 1)]
    try:
        with console.status("starting both platforms and deploying one model to each"):
            for root, var in zip(roots, var_dirs, strict=True):
                shutil.rmtree(var, ignore_errors=True)
                fraudctl(root, "up", "--var-dir", str(var))
            result = train_model()
            plans = [load_plan(var) for var in var_dirs]
            addresses = []
            for plan in plans:
                assert plan is not None
                asyncio.run(deploy(plan.address("governance"), plan.var_dir, result))
                addresses.append(plan.address("ingest"))
        with console.status("alternating requests between the two"):
            runs = asyncio.run(measure(addresses, var_dirs, names, opts.seconds, opts.rate))
    finally:
        for root, var in zip(roots, var_dirs, strict=True):
            subprocess.run([sys.executable, "-m", "fraudctl", "down", "--var-dir", str(var)], cwd=root, check=False)
    table = Table(title=f"paired A/B: {names[0]} against {names[1]} (requests alternate)")
    for column in ("run", "ok", "errors", "p50 ms", "p95 ms", "p99 ms", "CPU ms/decision"):
        table.add_column(column, justify="left" if column in ("run", "errors") else "right")
    for run, cpu_ms in runs:
        errors = json.dumps(run.errors) if run.errors else "0"
        table.add_row(
            run.name, str(run.ok), errors, f"{run.p50_ms:.2f}", f"{run.p95_ms:.2f}", f"{run.p99_ms:.2f}",
            f"{cpu_ms['all']:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(by_process_table(runs, names))
    print(json.dumps({"base": opts.base, "runs": [{**run.to_dict(), "cpu_ms_per_decision": cpu} for run, cpu in runs]}))


def by_process_table(runs: list[tuple[RunStats, dict[str, float]]], names: list[str]) -> Table:
    """CPU ms per decision of each process, both platforms side by side, per phase (where a change costs)."""
    table = Table(title="CPU ms per decision by process (a process of one side only shows 0 on the other)")
    for column in ("phase", "process", names[0], names[1], "difference"):
        table.add_column(column, justify="left" if column in ("phase", "process") else "right")
    for (base_run, base_cpu), (_, this_cpu) in zip(runs[::2], runs[1::2], strict=True):
        phase = base_run.name.split(": ", 1)[1]
        for process in sorted(base_cpu.keys() | this_cpu.keys(), key=lambda p: (p != "all", p)):
            a, b = base_cpu.get(process, 0.0), this_cpu.get(process, 0.0)
            table.add_row(phase, process, f"{a:.3f}", f"{b:.3f}", f"{b - a:+.3f}")
    return table


if __name__ == "__main__":
    main()
