"""`make resilience`: kill -9 of each component in turn under open-loop load, then a check against the log.

Starts the platform with `fraudctl up` in its own var dir (build/resilience/var, emptied first), trains and
deploys a champion as `make bench` does, then for each component (ingest, features, scoring, governance,
monitor, nats, triton): load at `--rate` through a retrying client, `kill -9` after `--before-s`, load for
`--after-s` more. A fault the platform does not recover from by itself is recorded and followed by
`fraudctl down` + `fraudctl up`. At the end every request is checked against the log, `fraudctl audit verify`
and `audit replay` run, the platform stops, and the report goes to docs/resilience.md with the run's JSON in
resilience/results/. Quick run: `python -m resilience --components ingest,scoring --before-s 5 --after-s 10`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from fraudctl.procfile import ALL, Plan
from fraudshared.service import run_event_loop
from resilience import lifecycle
from resilience.check import Ledger, summarize
from resilience.client import RetryPolicy
from resilience.logread import read_log
from resilience.report import render, targets
from resilience.run import FaultRun, Settings, restart, run_fault

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("ingest", "features", "scoring", "governance", "monitor", "nats", "triton")


def _components(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in ALL]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown component(s) {unknown}; choose from {', '.join(ORDER)}")
    return chosen


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m resilience", description=__doc__)
    parser.add_argument("--components", type=_components, default=list(ORDER), help="comma-separated, in order")
    parser.add_argument("--rate", type=_positive, default=120.0, help="offered load (tx/s)")
    parser.add_argument("--before-s", type=_positive, default=10.0, help="load before the kill")
    parser.add_argument("--after-s", type=_positive, default=25.0, help="load after the kill")
    parser.add_argument("--during-s", type=_positive, default=10.0, help="the fault window: first s after the kill")
    parser.add_argument("--give-up-s", type=_positive, default=30.0, help="a request's retries stop this late")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "build" / "resilience" / "var")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "resilience.md", help="the Markdown report")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "resilience" / "results", help="the run's JSON")
    parser.add_argument("--replay-timeout-s", type=_positive, default=1800.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    policy = RetryPolicy(give_up_s=opts.give_up_s)
    settings = Settings(opts.rate, opts.before_s, opts.after_s, opts.during_s, policy)
    var_dir = opts.var_dir.resolve()
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    runs: list[FaultRun] = []
    audit: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    started = datetime.now(UTC)
    try:
        with console.status("fraudctl up"):
            plan: Plan = lifecycle.up(var_dir)
        version = lifecycle.deploy_champion(plan, console)
        console.print(f"champion {version} deployed; faults: {', '.join(opts.components)}")
        for i, component in enumerate(opts.components):
            run, plan = run_fault(var_dir, plan, component, settings, seed=11 + i, console=console)
            runs.append(run)
            console.print(f"{component}: done{' (needed a manual restart)' if run.manual_restart else ''}")
        if lifecycle.unhealthy(plan, wait_s=2.0):
            plan = restart(var_dir, console, problems)
        with console.status("reading the log back"):
            auditor = lifecycle.auditor_files(var_dir)
            records, problems_read = run_event_loop(read_log(plan.env["FRAUD_NATS_URL"], auditor))
        problems += problems_read
        with console.status("fraudctl audit verify"):
            audit["verify"] = lifecycle.fraudctl(var_dir, "audit", "verify", "--actor", "resilience").to_dict()
        with console.status("fraudctl audit replay"):
            audit["replay"] = _replay(var_dir, started, opts.replay_timeout_s)
    except lifecycle.PlatformError as exc:
        problems.append(str(exc))
        console.print(f"[red]{exc}[/]; reporting what was measured")
        records = []
    finally:
        with console.status("fraudctl down"):
            lifecycle.down(var_dir)
    report = _report(opts, settings, runs, Ledger.of(records), audit, problems)
    _write(report, opts, console)
    missed = [f["facts"]["component"] for f in report["faults"] if not all(f["targets"].values())]
    if len(report["faults"]) < len(opts.components):
        console.print(f"[red]measured {len(report['faults'])} of {len(opts.components)} faults[/]")
        return 1
    console.print(f"targets missed by: {', '.join(missed)}" if missed else "[green]every target met[/]")
    return 1 if missed else 0


def _replay(var_dir: Path, started: datetime, timeout: float) -> dict[str, Any]:
    # Requests carry event times from the workload's ten simulated days up to now: replay all of them.
    window = (started - timedelta(days=15)).isoformat(), datetime.now(UTC).isoformat()
    args = ("audit", "replay", "--from", window[0], "--to", window[1], "--actor", "resilience")
    return lifecycle.fraudctl(var_dir, *args, timeout=timeout).to_dict()


def _report(
    opts: argparse.Namespace, settings: Settings, runs: list[FaultRun], ledger: Ledger,
    audit: dict[str, Any], problems: list[str],
) -> dict[str, Any]:  # fmt: skip
    faults = []
    for run in runs:
        summary = summarize(run.outcomes, ledger, run.kill_at, settings.during_s)
        facts = run.facts()
        faults.append({"facts": facts, "summary": summary, "targets": targets(run.component, summary, facts)})
    policy = settings.policy
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.node()}, {platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": _command(),
        "settings": {
            "rate": settings.rate,
            "before_s": settings.before_s,
            "after_s": settings.after_s,
            "during_s": settings.during_s,
            "give_up_s": policy.give_up_s,
            "attempt_timeout_s": policy.attempt_timeout_s,
            "first_backoff_s": policy.first_backoff_s,
            "max_backoff_s": policy.max_backoff_s,
            "components": opts.components,
        },
        "faults": faults,
        "audit": audit,
        "log_problems": problems,
    }


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else "")


def _command() -> str:
    via_make = os.environ.get("MAKELEVEL") and not sys.argv[1:]
    return "make resilience" if via_make else shlex.join(["python", "-m", "resilience", *sys.argv[1:]])


def _write(report: dict[str, Any], opts: argparse.Namespace, console: Console) -> None:
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    path = opts.results_dir / f"{report['timestamp'].replace(':', '').replace('+0000', 'Z')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    opts.doc.parent.mkdir(parents=True, exist_ok=True)
    opts.doc.write_text(render(report))
    console.print(f"written {opts.doc} and {path}")


if __name__ == "__main__":
    sys.exit(main())
