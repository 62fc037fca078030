"""kill -9 of one component of a running platform, whichever supervisor runs it.

A component's process is found through ``/proc`` alone: its environment carries ``FRAUD_RUNTIME_DIR`` = the
absolute var dir (every process the runtime starts has it) and its command line holds the component's command
from ``<var>/run/plan.json``. Neither depends on honcho, supervisord or how they wrap a command, so the same
harness measures today's runtime and the next one. Children that carry the same command (Triton's Python
backend stubs do not) are left to die with their parent: only the top-most match is killed, as a crash would.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fraudctl.procfile import RUNTIME_MARKER

PROC = Path("/proc")


@dataclass(frozen=True)
class Kill:
    """What a fault did: the pids sent SIGKILL (none when the component was not running) and when."""

    component: str
    pids: tuple[int, ...]
    at: float


def command_matches(argv: Sequence[str], command: Sequence[str]) -> bool:
    """Whether ``command`` runs as ``argv``: a contiguous run of ``argv`` equal to it.

    The executable may be named by another path to the same name (``/usr/bin/python`` for a plan's
    ``.venv/bin/python`` after a supervisor resolved it); every argument after it must be equal.
    """
    if not command or len(argv) < len(command):
        return False
    head, tail = Path(command[0]).name, list(command[1:])
    for i in range(len(argv) - len(command) + 1):
        if Path(argv[i]).name == head and list(argv[i + 1 : i + len(command)]) == tail:
            return True
    return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _parent_and_state(entry: Path) -> tuple[int, str] | None:
    stat = _read(entry / "stat").decode(errors="replace")
    if ")" not in stat:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces
    return int(fields[1]), fields[0]


def component_pids(var_dir: Path, command: Sequence[str], proc: Path = PROC) -> list[int]:
    """Live top-most processes of the runtime in ``var_dir`` that run ``command``.

    Args:
        var_dir: The runtime's var dir (made absolute, as the runtime writes it into the environment).
        command: The component's argv from the plan.
        proc: Where the process table is read (a fake tree in tests).

    Returns:
        Sorted pids; empty when the component is not running.
    """
    marker = f"{RUNTIME_MARKER}={Path(var_dir).resolve()}".encode()
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        status = _parent_and_state(entry)
        if status is None or status[1] in ("Z", "X"):
            continue
        if marker not in _read(entry / "environ").split(b"\0"):
            continue
        argv = [part.decode(errors="replace") for part in _read(entry / "cmdline").split(b"\0") if part]
        if command_matches(argv, command):
            parents[int(entry.name)] = status[0]
    return sorted(pid for pid, parent in parents.items() if parent not in parents)


def runs_as(command: Sequence[str]) -> list[str]:
    """The argv a plan's command runs as.

    A launcher (``python -m fraudctl.triton_launch KEY -- argv...``) replaces itself with the command after
    ``--``, plus flags at the end, which a contiguous match ignores.
    """
    if "--" in command and any(part.startswith("fraudctl.") and part.endswith("_launch") for part in command):
        return list(command[list(command).index("--") + 1 :])
    return list(command)


def kill(var_dir: Path, component: str, command: Sequence[str]) -> Kill:
    """Sends SIGKILL to ``component``'s process(es) and returns when (perf_counter, right after the signal)."""
    pids = component_pids(var_dir, runs_as(command))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it died on its own between the scan and the signal
            continue
    return Kill(component, tuple(pids), time.perf_counter())
