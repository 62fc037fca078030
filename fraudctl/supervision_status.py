"""`fraudctl status`'s table: per component its address, pid, health, uptime, supervisord state and restarts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fraudctl import health, supervision_log
from fraudctl.procfile import Paths, Plan
from fraudctl.supervisor_conf import WATCHDOG
from fraudctl.supervisor_rpc import ProcessInfo, SupervisorClient, SupervisorUnavailable


def process_infos(paths: Paths) -> dict[str, ProcessInfo]:
    """What supervisord says about each program; empty if it does not answer (not up yet, or gone)."""
    try:
        return SupervisorClient(paths.supervisor_socket, timeout=5.0).processes()
    except SupervisorUnavailable:
        return {}


def print_status(plan: Plan, paths: Paths, console: Console) -> int:
    """Probes every component of ``plan`` and prints the table; returns 0 if all are SERVING, else 1.

    Columns: address, pid and uptime of the current process, health (the probe), supervisord's state
    (RUNNING, STARTING, BACKOFF, FATAL...) and restarts (starts beyond the first in this run).
    """
    infos = process_infos(paths)
    restarts = supervision_log.restarts(paths)
    table = Table("component", "address", "pid", "health", "uptime", "state", "restarts")
    healthy = bool(infos)
    tls = health.probe_credential(plan.var_dir)
    for name, comp in plan.components.items():
        state = health.probe(comp, tls=tls)
        healthy &= state == health.SERVING
        colour = "green" if state == health.SERVING else "red"
        table.add_row(
            name, plan.address(name), *_process_cells(infos.get(name), restarts.get(name, 0), f"[{colour}]{state}[/]")
        )
    if WATCHDOG in infos:
        healthy &= infos[WATCHDOG].state in ("STARTING", "RUNNING")
        table.add_row(WATCHDOG, "-", *_process_cells(infos[WATCHDOG], restarts.get(WATCHDOG, 0), "-"))
    console.print(table)
    if not infos:
        console.print(f"supervisord does not answer on {paths.supervisor_socket}")
    return 0 if healthy else 1


def _process_cells(info: ProcessInfo | None, restarts: int, health_cell: str) -> list[str]:
    if info is None:
        return ["-", health_cell, "-", "?", str(restarts)]
    colour = {"RUNNING": "green", "STARTING": "yellow", "BACKOFF": "yellow"}.get(info.state, "red")
    pid = str(info.pid) if info.pid else "-"
    return [pid, health_cell, _duration(info.uptime), f"[{colour}]{info.state}[/]", str(restarts)]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
