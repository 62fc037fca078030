"""Finding and stopping the local runtime's processes through ``/proc`` (Linux).

Ours are: supervisord (its command line names our ``run/supervisord.conf``) and every process it started
or they started in turn (their environment carries `RUNTIME_MARKER` = our var dir, which supervisord
passes on to every program).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from fraudctl.procfile import RUNTIME_MARKER, Paths

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # After "pid (comm) ": comm may hold spaces.


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def uptime(pid: int) -> float | None:
    """Seconds since ``pid`` started, or None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    boot_seconds = float((_PROC / "uptime").read_text().split()[0])
    return boot_seconds - int(fields[19]) / os.sysconf("SC_CLK_TCK")


def cpu_time(pid: int) -> float | None:
    """CPU seconds (user + system) ``pid`` has used so far, or None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def argv(pid: int) -> list[str]:
    """The command line of ``pid`` as a list (empty if it is gone)."""
    return [part.decode(errors="replace") for part in _cmdline(pid).split(b"\0") if part]


def _cmdline(pid: int) -> bytes:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def supervisord_pid(paths: Paths) -> int | None:
    """The pid of the live supervisord started for this var dir (checked against its command line), else None."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = _cmdline(pid)
    if alive(pid) and b"supervisord" in cmdline and str(paths.supervisor_conf).encode() in cmdline:
        return pid
    return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        fields = _stat_fields(pid)
        pid = int(fields[1]) if fields else 0
    return pids


def our_processes(paths: Paths) -> list[int]:
    """Live processes belonging to the runtime in ``paths.var_dir`` (never this process or its ancestors)."""
    marker = f"{RUNTIME_MARKER}={paths.var_dir}\0".encode()
    conf = str(paths.supervisor_conf).encode()
    skip = _ancestors()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip or not alive(int(entry.name)):
            continue
        try:
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:
            environ = b""
        if marker in environ or conf in _cmdline(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    """Sends ``sig`` to each pid, ignoring those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Waits up to ``timeout`` seconds for the pids to exit; returns those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left
