"""Starting, stopping and checking the platform for the harness, through `fraudctl` as a user would.

`up`, `down` and the audit commands run as ``python -m fraudctl`` subprocesses: the harness measures whatever
runtime is on disk (supervisord now; honcho when it was written) through its public command line, and a
restart after a fault is the same `fraudctl down` + `fraudctl up` a person would type.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console

from bench.workload import requests as make_requests
from bench.workload import train_model
from fraudctl import health
from fraudctl.demo import deploy
from fraudctl.procfile import Plan, load_plan
from fraudshared.identity.client import resolve_credential
from fraudshared.identity.pki import CredentialFiles
from resilience.client import RetryPolicy, score_with_retry
from resilience.load import channel, stub

ROOT = Path(__file__).resolve().parent.parent
TAIL = 25  # output lines kept in the run's JSON (e.g. which decisions `audit replay` found mismatched)


@dataclass(frozen=True)
class Done:
    """A finished `fraudctl` command: its exit code, its last meaningful line, how long it took, its last lines."""

    rc: int
    summary: str
    seconds: float
    tail: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"rc": self.rc, "summary": self.summary, "seconds": round(self.seconds, 1), "tail": list(self.tail)}


class PlatformError(RuntimeError):
    """`fraudctl up` failed; the message is its last line."""


def fraudctl(var_dir: Path, *args: str, timeout: float = 300.0) -> Done:
    """Runs ``python -m fraudctl <args> --var-dir <var_dir>`` and keeps its last non-empty output line."""
    cmd = [sys.executable, "-m", "fraudctl", *args, "--var-dir", str(var_dir)]
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Done(-1, f"timed out after {timeout:.0f} s", time.perf_counter() - started)
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    return Done(done.returncode, lines[-1] if lines else "", time.perf_counter() - started, tuple(lines[-TAIL:]))


def up(var_dir: Path) -> Plan:
    """`fraudctl up`, then the plan it wrote.

    Raises:
        PlatformError: If it did not start.
    """
    done = fraudctl(var_dir, "up", timeout=180.0)
    plan = load_plan(var_dir)
    if done.rc != 0 or plan is None:
        raise PlatformError(f"fraudctl up failed (rc={done.rc}): {done.summary}")
    return plan


def down(var_dir: Path) -> Done:
    return fraudctl(var_dir, "down", timeout=120.0)


def auditor_files(var_dir: Path) -> CredentialFiles | None:
    """The read-only auditor's certificate `fraudctl up` issued under ``<var>/credentials/auditor``.

    Raises:
        fraudshared.config.ConfigError: If there is none.
    """
    return resolve_credential("auditor", var_dir).files


def unhealthy(plan: Plan, wait_s: float = 10.0) -> dict[str, str]:
    """Components not SERVING after up to ``wait_s`` seconds (empty: all are)."""
    deadline = time.monotonic() + wait_s
    tls = health.probe_credential(plan.var_dir)  # every port asks for a certificate of the platform's CA
    while True:
        states = {name: health.probe(component, tls=tls) for name, component in plan.components.items()}
        bad = {name: state for name, state in states.items() if state != health.SERVING}
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(0.5)


def deploy_champion(plan: Plan, console: Console) -> str:
    """Trains the benchmark's model and makes it champion through governance, as `make bench` does.

    Raises:
        PlatformError: If governance refused or failed a step.
    """
    with console.status("training and deploying the champion"):
        result = train_model()
        try:
            version, _ = asyncio.run(deploy(plan.address("governance"), plan.var_dir, result))
        except grpc.aio.AioRpcError as exc:
            raise PlatformError(f"deploying the champion failed: {exc.code().name}: {exc.details()}") from None
    return version


async def wait_for_champion(plan: Plan, timeout: float = 60.0) -> float | None:
    """Sends probe requests until one is decided by Triton, not degraded; seconds it took, None if never.

    The probes are real decisions with their own ids (``probe-...``); they are not counted in any fault.
    """
    probes = iter(make_requests(2000, f"probe-{uuid.uuid4().hex[:6]}", seed=3))
    policy = RetryPolicy(give_up_s=5.0)
    started = time.perf_counter()
    async with channel(plan) as ch:
        while time.perf_counter() - started < timeout:
            try:
                outcome = await score_with_retry(stub(ch), next(probes), time.perf_counter(), policy)
            except (grpc.aio.AioRpcError, StopIteration):
                return None
            if outcome.ok and outcome.scoring_path == "TRITON" and not outcome.degraded:
                return time.perf_counter() - started
            await asyncio.sleep(0.25)
    return None
