"""Liveness watchdog for the local runtime, run by supervisord itself as ``[program:watchdog]``.

supervisord restarts a component whose process exits; tritonserver can hang, or lose its backend, while
its process lives on, and a process that lives is never restarted. Every ``FRAUD_WATCHDOG_INTERVAL_S``
the watchdog asks Triton's ``/v2/health/live`` (and NATS's ``/healthz``): after ``FRAUD_WATCHDOG_FAILURES``
failures in a row (no answer, refused, not 200) the component is hung. It also asks Triton's
``/v2/health/ready``: while live answers, ready may fail for the seconds a model loads, so only
``FRAUD_WATCHDOG_READY_FAILURES`` failures in a row (a minute by default) mean Triton cannot serve. Either
way the watchdog restarts it through supervisord's XML-RPC socket (stop: TERM, KILL after stopwaitsecs;
then start) and logs why. A component is judged only once it has answered since its last start, or once
``FRAUD_WATCHDOG_GRACE_S`` have passed since that start (a slow start-up is not a hang; one that never
ends is).

Cost: one XML-RPC call and one to three loopback HTTP requests per interval, in one idle Python process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fraudctl import health
from fraudctl.procfile import RUNTIME_MARKER, Paths, Plan, load_plan
from fraudctl.supervisor_rpc import ProcessInfo, SupervisorClient, SupervisorUnavailable

log = logging.getLogger("fraudctl.watchdog")

_JUDGED_STATES = ("STARTING", "RUNNING")
_INT_FIELDS = ("failures", "ready_failures")


@dataclass(frozen=True)
class WatchdogConfig:
    """How eagerly the watchdog acts (all from the environment, see `from_env`).

    Attributes:
        interval_s: Seconds between rounds of probes.
        failures: Failed liveness probes in a row that make a component hung.
        ready_failures: Failed readiness probes in a row (liveness answering) that make Triton unable to serve.
        timeout_s: Seconds one probe may take (a stopped server accepts the connection and never answers).
        grace_s: Seconds after a start during which a component that never answered is not judged.
    """

    interval_s: float = 2.0
    failures: int = 3
    ready_failures: int = 30
    timeout_s: float = 2.0
    grace_s: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WatchdogConfig:
        """Reads ``FRAUD_WATCHDOG_<FIELD>`` (``FRAUD_WATCHDOG_INTERVAL_S``...); defaults when unset.

        Raises:
            ValueError: If a value is not a positive number (the message names the variable).
        """
        values: dict[str, float | int] = {}
        for name in ("interval_s", "failures", "ready_failures", "timeout_s", "grace_s"):
            var = f"FRAUD_WATCHDOG_{name.upper()}"
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            try:
                value = int(raw) if name in _INT_FIELDS else float(raw)
            except ValueError:
                value = 0
            if not 0 < value < 86400:
                raise ValueError(f"{var} must be a positive number, got {raw!r}")
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]  # keys are the fields above


@dataclass(frozen=True)
class Verdict:
    """One probe's answer: ``live`` False means hung; ``ready`` False means it cannot serve (yet)."""

    live: bool
    ready: bool = True
    reason: str = ""


class Supervisor(Protocol):
    """What the watchdog needs from supervisord (`SupervisorClient` is the real one)."""

    def processes(self) -> dict[str, ProcessInfo]: ...

    def restart(self, name: str) -> None: ...


Probe = Callable[[str], Verdict]


@dataclass
class _Watch:
    pid: int = 0
    answered: bool = False
    dead: int = 0  # liveness failures in a row
    unready: int = 0  # readiness failures in a row, liveness answering
    reasons: list[str] = field(default_factory=list)


class Watchdog:
    """Decides, one round at a time, which watched component is hung or cannot serve, and restarts it."""

    def __init__(self, targets: Sequence[str], probe: Probe, supervisor: Supervisor, config: WatchdogConfig) -> None:
        self._targets = list(targets)
        self._probe = probe
        self._supervisor = supervisor
        self._config = config
        self._watches = {name: _Watch() for name in targets}

    def check(self) -> list[str]:
        """Probes every watched component once; returns the names it restarted in this round."""
        infos = self._supervisor.processes()
        restarted = []
        for name in self._targets:
            info, watch = infos.get(name), self._watches[name]
            if info is None or info.state not in _JUDGED_STATES or not info.pid:
                self._watches[name] = _Watch()  # not running: supervisord's own restart policy applies
                continue
            if info.pid != watch.pid:
                watch = self._watches[name] = _Watch(pid=info.pid)  # a new process: judge it afresh
            verdict = self._probe(name)
            if verdict.live and verdict.ready:
                watch.answered, watch.dead, watch.unready, watch.reasons = True, 0, 0, []
                continue
            if not watch.answered and not verdict.live and (info.uptime or 0.0) < self._config.grace_s:
                continue  # still starting up
            watch.answered |= verdict.live
            watch.dead, watch.unready = (0, watch.unready + 1) if verdict.live else (watch.dead + 1, 0)
            count, limit = (
                (watch.unready, self._config.ready_failures) if verdict.live else (watch.dead, self._config.failures)
            )
            watch.reasons = [*watch.reasons[-2:], verdict.reason]
            log.warning("%s (pid %d) failed its probe %d/%d: %s", name, info.pid, count, limit, verdict.reason)
            if count >= limit:
                log.error(
                    "restarting %s (pid %d): %d failed probes in a row (last: %s)",
                    name,
                    info.pid,
                    count,
                    "; ".join(watch.reasons),
                )
                self._supervisor.restart(name)
                self._watches[name] = _Watch()
                restarted.append(name)
        return restarted

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Runs a round every ``interval_s`` until ``stop()`` (for ever by default)."""
        while not stop():
            began = time.monotonic()
            try:
                self.check()
            except SupervisorUnavailable as exc:  # supervisord shutting down or busy: try again next round
                log.warning("%s", exc)
            time.sleep(max(0.0, self._config.interval_s - (time.monotonic() - began)))


def http_probe(plan: Plan, timeout_s: float) -> Probe:
    """The real probe: `health.LIVENESS`, then `health.READINESS_HTTP`, each must answer 200 in ``timeout_s``."""

    def probe(name: str) -> Verdict:
        comp = plan.components[name]
        kind, path = health.LIVENESS[name]
        state, why = health.check_http(comp.ports[kind], path, timeout_s)
        if state != health.SERVING:
            return Verdict(live=False, reason=f"{path}: {state} ({why})")
        if name in health.READINESS_HTTP:
            kind, path = health.READINESS_HTTP[name]
            state, why = health.check_http(comp.ports[kind], path, timeout_s)
            if state != health.SERVING:
                return Verdict(live=True, ready=False, reason=f"{path}: {state} ({why})")
        return Verdict(live=True)

    return probe


def main() -> int:
    """Entry point under supervisord: reads the plan of the var dir in `RUNTIME_MARKER` and runs forever."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # supervisord's stop: nothing to finish, exit cleanly
    var_dir = os.environ.get(RUNTIME_MARKER)
    plan = load_plan(Path(var_dir)) if var_dir else None
    if plan is None:
        log.error("no plan: %s is unset or names a var dir without run/plan.json", RUNTIME_MARKER)
        return 2
    try:
        config = WatchdogConfig.from_env(os.environ)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    targets = [name for name in health.LIVENESS if name in plan.components]
    client = SupervisorClient(Paths(plan.var_dir).supervisor_socket)
    log.info(
        "watching %s every %.1f s: restart after %d failed liveness or %d failed readiness probes in a row "
        "(grace %.0f s after a start)",
        ", ".join(targets),
        config.interval_s,
        config.failures,
        config.ready_failures,
        config.grace_s,
    )
    Watchdog(targets, http_probe(plan, config.timeout_s), client, config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
