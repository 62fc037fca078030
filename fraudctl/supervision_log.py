"""Reading the runtime's logs: the components' output and supervisord's own log.

Each component writes ``var/log/<component>.log``; supervisord writes ``var/log/supervisord.log``, one line
per spawn, exit and state change (``2026-01-05 10:00:00,123 INFO spawned: 'nats' with pid 4242``).

Restarts are counted from supervisord's "spawned:" lines rather than kept by a listener of our own: the
log is written by supervisord itself for every start, whoever caused it (a crash, a backoff retry, the
watchdog), it is not rotated within a run (``logfile_maxbytes=0``) and `up` moves the previous run's
aside, so the count is exact for the current run and needs no extra process.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from fraudctl.procfile import Paths

_SPAWNED = re.compile(r" spawned: '([^']+)' with pid \d+")
_EXITED = re.compile(r" exited: (\S+) \((.*)\)$")


def supervisor_lines(paths: Paths, component: str | None = None) -> list[str]:
    """The lines of supervisord's log (only those naming ``component`` if given); empty when there is none."""
    try:
        lines = paths.supervisor_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    if component is None:
        return lines
    return [line for line in lines if f" '{component}' " in line or f": {component} " in line]


def component_lines(paths: Paths, component: str) -> list[str]:
    """A component's output lines; empty when it has written none yet."""
    try:
        return paths.component_log(component).read_text(errors="replace").splitlines()
    except OSError:
        return []


def tail(paths: Paths, components: Sequence[str], lines: int) -> list[str]:
    """The last ``lines`` lines of each component's log, each prefixed ``<component> | `` when several."""
    out = []
    for name in components:
        chosen = component_lines(paths, name)[-lines:] if lines > 0 else []
        out += [f"{name} | {line}" if len(components) > 1 else line for line in chosen]
    return out


def follow(paths: Paths, components: Sequence[str], poll: float = 0.2) -> Iterator[str]:
    """Yields lines appended to the components' logs from now on, forever (the caller stops iterating).

    A log that appears later (the component had not started) or is rotated is picked up from its start.
    """
    files: dict[str, tuple[TextIO, int]] = {}
    for name in components:
        opened = _open_at_end(paths.component_log(name))
        if opened:
            files[name] = opened
    while True:
        quiet = True
        for name in components:
            path = paths.component_log(name)
            if name not in files or _replaced(path, files[name][1]):
                if name in files:
                    files[name][0].close()
                opened = _open_at_start(path)
                if not opened:
                    continue
                files[name] = opened
            for line in iter(files[name][0].readline, ""):
                quiet = False
                line = line.rstrip("\n")
                yield f"{name} | {line}" if len(components) > 1 else line
        if quiet:
            time.sleep(poll)


def _open_at_end(path: Path) -> tuple[TextIO, int] | None:
    opened = _open_at_start(path)
    if opened:
        opened[0].seek(0, os.SEEK_END)
    return opened


def _open_at_start(path: Path) -> tuple[TextIO, int] | None:
    try:
        handle = path.open(errors="replace")
    except OSError:
        return None
    return handle, os.fstat(handle.fileno()).st_ino


def _replaced(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino != inode
    except OSError:
        return False


def restarts(paths: Paths) -> dict[str, int]:
    """How many times each program was started beyond its first start in this run."""
    spawns: dict[str, int] = {}
    for line in supervisor_lines(paths):
        match = _SPAWNED.search(line)
        if match:
            spawns[match.group(1)] = spawns.get(match.group(1), 0) + 1
    return {name: count - 1 for name, count in spawns.items()}


def last_exit(paths: Paths, component: str) -> str | None:
    """How ``component`` last exited, as supervisord put it ("exit status 1; not expected"), or None."""
    found = None
    for line in supervisor_lines(paths, component):
        match = _EXITED.search(line)
        if match and match.group(1) == component:
            found = match.group(2)
    return found


def rotate(paths: Paths, names: Sequence[str]) -> None:
    """Moves the previous run's logs (supervisord's and each named program's) to ``<name>.log.1``."""
    for path in [paths.supervisor_log, *(paths.component_log(n) for n in names)]:
        if path.exists():
            path.replace(path.with_name(path.name + ".1"))
