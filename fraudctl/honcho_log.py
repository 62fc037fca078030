"""Reading honcho's log, ``var/log/honcho.log``: one line per output line, ``HH:MM:SS <name> | <text>``.

A component's lines are named ``<component>.1``; honcho's own lines (started, stopped, signals) ``system``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

from fraudctl.procfile import Paths

_STARTED = re.compile(r"^\S+ system\s*\| (\S+)\.\d+ started \(pid=(\d+)\)")
_STOPPED = re.compile(r"^\S+ system\s*\| (\S+)\.\d+ stopped \(rc=(-?\d+)\)")


def belongs(line: str, component: str | None) -> bool:
    """Whether ``line`` is ``component``'s output or honcho's line about it (any line if None)."""
    if component is None:
        return True
    parts = line.split(maxsplit=3)
    if len(parts) < 2:
        return False
    if parts[1] == "system":
        return len(parts) > 3 and parts[3].startswith(f"{component}.1 ")
    return parts[1] == f"{component}.1"


def log_lines(paths: Paths, component: str | None = None) -> list[str]:
    """The log's lines (only ``component``'s if given); empty when there is no log."""
    try:
        lines = paths.honcho_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if belongs(line, component)]


def follow(paths: Paths, component: str | None = None, poll: float = 0.2) -> Iterator[str]:
    """Yields lines appended to the log from now on, forever (the caller stops iterating)."""
    with paths.honcho_log.open(errors="replace") as log:
        log.seek(0, os.SEEK_END)
        while True:
            line = log.readline()
            if not line:
                time.sleep(poll)
            elif belongs(line, component):
                yield line.rstrip("\n")


def component_pids(paths: Paths) -> dict[str, int]:
    """Component pids from honcho's "started" lines (the Procfile ``exec``s, so they are the components')."""
    pids: dict[str, int] = {}
    for line in log_lines(paths):
        match = _STARTED.match(line)
        if match:
            pids[match.group(1)] = int(match.group(2))
    return pids


def first_stopped(paths: Paths) -> tuple[str, int] | None:
    """The first component that exited, and its exit code (honcho then stops the others), or None."""
    for line in log_lines(paths):
        match = _STOPPED.match(line)
        if match:
            return match.group(1), int(match.group(2))
    return None
