"""One fault: load before, kill -9, load after, then is the platform whole again, or does it need a person?"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.workload import requests as make_requests
from fraudctl.procfile import Plan
from fraudshared.service import run_event_loop
from resilience import lifecycle
from resilience.client import Outcome, RetryPolicy
from resilience.faults import Kill, kill
from resilience.load import channel, open_loop, stub

CHAMPION_WAIT_S = 90.0  # after `up`: the model must be loaded into Triton and scoring must have seen it
BACK_WAIT_S = 15.0  # after a fault's window: how long the harness still waits before a person would step in
WARM_UP_S = 3.0


@dataclass(frozen=True)
class Settings:
    """The load and its windows (seconds), as given on the command line."""

    rate: float
    before_s: float
    after_s: float
    during_s: float
    policy: RetryPolicy


@dataclass
class FaultRun:
    """What happened around one kill; times are perf_counter seconds, ``kill_at`` on the outcomes' clock."""

    component: str
    outcomes: list[Outcome] = field(default_factory=list)
    pids: tuple[int, ...] = ()
    kill_at: float = 0.0
    load_start: float = 0.0
    unhealthy_after: dict[str, str] = field(default_factory=dict)
    champion_back_s: float | None = None
    manual_restart: bool = False
    notes: list[str] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "pids_killed": list(self.pids),
            "kill_at_s": round(self.kill_at - self.load_start, 3),
            "unhealthy_after": self.unhealthy_after,
            "champion_back_s": None if self.champion_back_s is None else round(self.champion_back_s, 2),
            "manual_restart": self.manual_restart,
            "notes": self.notes,
        }


def ensure_champion(var_dir: Path, plan: Plan, console: Console, notes: list[str]) -> Plan:
    """Returns a plan whose decisions go through the champion on Triton, restarting the platform once if not."""
    waited = run_event_loop(lifecycle.wait_for_champion(plan, CHAMPION_WAIT_S))
    if waited is not None:
        return plan
    notes.append(f"decisions did not go through Triton within {CHAMPION_WAIT_S:.0f} s; restarted the platform")
    return restart(var_dir, console, notes)


def warm_up(plan: Plan, settings: Settings) -> None:
    """A few seconds of the same load, not counted in any fault.

    A platform just (re)started is slow for its first requests; without this, that would be read as the
    'before' latency of the next fault.
    """
    requests = make_requests(int(settings.rate * WARM_UP_S), f"warm{int(time.time() * 1000) % 10**8}", seed=5)

    async def load() -> None:
        async with channel(plan) as ch:
            await open_loop(stub(ch), requests, settings.rate, time.perf_counter(), RetryPolicy(give_up_s=5.0))

    run_event_loop(load())


def restart(var_dir: Path, console: Console, notes: list[str]) -> Plan:
    """`fraudctl down` + `fraudctl up` (what a person would do), then wait for the champion."""
    with console.status("fraudctl down + up"):
        stopped = lifecycle.down(var_dir)
        if stopped.rc != 0:
            notes.append(f"fraudctl down: rc={stopped.rc} {stopped.summary}")
        plan = lifecycle.up(var_dir)
        waited = run_event_loop(lifecycle.wait_for_champion(plan, CHAMPION_WAIT_S))
    if waited is None:
        notes.append(f"after the restart, decisions did not go through Triton within {CHAMPION_WAIT_S:.0f} s")
    return plan


def run_fault(
    var_dir: Path, plan: Plan, component: str, settings: Settings, seed: int, console: Console
) -> tuple[FaultRun, Plan]:
    """Measures one kill of ``component`` and leaves the platform deciding again (restarting it if it must).

    Returns:
        The fault's run, and the plan now running (a restart gives the components new ports).
    """
    run = FaultRun(component)
    plan = ensure_champion(var_dir, plan, console, run.notes)
    with console.status(f"{component}: warming up"):
        warm_up(plan, settings)
    count = int(settings.rate * (settings.before_s + settings.after_s))
    requests = make_requests(count, f"r{seed}{component[:3]}{int(time.time()) % 100000}", seed=seed)
    with console.status(f"{component}: {settings.rate:.0f} tx/s, kill -9 at {settings.before_s:.0f} s"):
        run.outcomes, fault, run.load_start = run_event_loop(_measure(plan, component, requests, settings))
    run.pids, run.kill_at = fault.pids, fault.at
    if not fault.pids:
        run.notes.append(f"no running process of {component} was found to kill")
    with console.status(f"{component}: is everything back?"):
        run.unhealthy_after = lifecycle.unhealthy(plan)
        if not run.unhealthy_after:  # else a person steps in anyway: no need to wait for the champion
            run.champion_back_s = run_event_loop(lifecycle.wait_for_champion(plan, BACK_WAIT_S))
    if run.unhealthy_after or run.champion_back_s is None:
        run.manual_restart = True
        plan = restart(var_dir, console, run.notes)
    return run, plan


async def _measure(
    plan: Plan, component: str, requests: list[Any], settings: Settings
) -> tuple[list[Outcome], Kill, float]:
    async with channel(plan) as ch:
        await asyncio.wait_for(ch.channel_ready(), 10.0)
        start = time.perf_counter() + 0.2

        async def inject() -> Kill:
            await asyncio.sleep(start + settings.before_s - time.perf_counter())
            command = plan.components[component].command
            return await asyncio.to_thread(kill, plan.var_dir, component, command)

        outcomes, fault = await asyncio.gather(
            open_loop(stub(ch), requests, settings.rate, start, settings.policy), inject()
        )
    return outcomes, fault, start
