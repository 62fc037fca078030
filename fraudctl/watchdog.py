"""Liveness watchdog for the local runtime, run by supervisord itself as ``[program:watchdog]``.

supervisord restarts a component whose process exits; tritonserver can hang, or lose its backend, while
its process lives on, and a process that lives is never restarted. Every ``FRAUD_WATCHDOG_INTERVAL_S``
the watchdog asks Triton's ``/v2/health/live`` and ``/v2/health/ready`` (and NATS's ``/healthz``), and
after ``FRAUD_WATCHDOG_FAILURES`` failed rounds in a row restarts that component through supervisord's
XML-RPC socket (stop: TERM, KILL after stopwaitsecs; then start), logging why. A component is judged only
once it has answered since its last start, or once ``FRAUD_WATCHDOG_GRACE_S`` have passed since that start
(so a slow start-up is not a hang, and a start-up that hangs for ever is one).

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


@dataclass(frozen=True)
class WatchdogConfig:
    """How eagerly the watchdog acts (all from the environment, see `from_env`).

    Attributes:
        interval_s: Seconds between rounds of probes.
        failures: Failed rounds in a row that make a component hung.
        timeout_s: Seconds one probe may take (a stopped server accepts the connection and never answers).
        grace_s: Seconds after a start during which a component that never answered is not judged.
    """

    interval_s: float = 2.0
    failures: int = 3
    timeout_s: float = 2.0
    grace_s: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WatchdogConfig:
        """Reads ``FRAUD_WATCHDOG_{INTERVAL_S,FAILURES,TIMEOUT_S,GRACE_S}``; defaults when unset.

        Raises:
            ValueError: If a value is not a positive number (the message names the variable).
        """
        values: dict[str, float | int] = {}
        for name in ("interval_s", "failures", "timeout_s", "grace_s"):
            var = f"FRAUD_WATCHDOG_{name.upper()}"
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            try:
                value = int(raw) if name == "failures" else float(raw)
            except ValueError:
                value = 0
            if not 0 < value < 86400:
                raise ValueError(f"{var} must be a positive number, got {raw!r}")
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]  # keys are the fields above


class Supervisor(Protocol):
    """What the watchdog needs from supervisord (`SupervisorClient` is the real one)."""

    def processes(self) -> dict[str, ProcessInfo]: ...

    def restart(self, name: str) -> None: ...


# Returns None when the component answers, else why not ("/v2/health/live: NOT_SERVING").
Probe = Callable[[str], str | None]


@dataclass
class _Watch:
    pid: int = 0
    answered: bool = False
    failures: int = 0
    reasons: list[str] = field(default_factory=list)


class Watchdog:
    """Decides, one round at a time, which watched component is hung, and restarts it."""

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
            reason = self._probe(name)
            if reason is None:
                watch.answered, watch.failures, watch.reasons = True, 0, []
                continue
            if not watch.answered and (info.uptime or 0.0) < self._config.grace_s:
                continue  # still starting up
            watch.failures += 1
            watch.reasons.append(reason)
            log.warning(
                "%s (pid %d) failed its probe %d/%d: %s", name, info.pid, watch.failures, self._config.failures, reason
            )
            if watch.failures >= self._config.failures:
                log.error(
                    "restarting %s (pid %d): %d failed probes in a row (%s)",
                    name,
                    info.pid,
                    watch.failures,
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
    """The real probe: every `health.LIVENESS` path of the component must answer 200 within ``timeout_s``."""

    def probe(name: str) -> str | None:
        kind, paths = health.LIVENESS[name]
        port = plan.components[name].ports[kind]
        for path in paths:
            state, why = health.check_http(port, path, timeout_s)
            if state != health.SERVING:
                return f"{path}: {state} ({why})"
        return None

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
        "watching %s every %.1f s (restart after %d failed probes in a row, grace %.0f s after a start)",
        ", ".join(targets),
        config.interval_s,
        config.failures,
        config.grace_s,
    )
    Watchdog(targets, http_probe(plan, config.timeout_s), client, config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
