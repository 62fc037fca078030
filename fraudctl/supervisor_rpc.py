"""Talking to the runtime's supervisord over its XML-RPC unix socket (``<var>/run/supervisor.sock``).

Used by `fraudctl status` / `up` and by the watchdog (`down` sends SIGTERM to supervisord's pid). Only the
calls we need, with answers as small typed records; any failure to reach supervisord is one
`SupervisorUnavailable`.
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# States in which supervisord holds a live process for the program.
LIVE_STATES = ("STARTING", "RUNNING", "STOPPING")
# supervisor.xmlrpc.Faults: harmless answers when a restart races with the program's own exit or start.
_ALREADY_STARTED, _NOT_RUNNING = 60, 70


class SupervisorUnavailable(RuntimeError):
    """supervisord did not answer (not running, socket missing, or a fault); the message says which."""


@dataclass(frozen=True)
class ProcessInfo:
    """What supervisord knows about one program.

    Attributes:
        name: Program name (the component, or ``watchdog``).
        state: supervisord's state name: STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN.
        pid: The program's pid while it runs, else 0.
        started: Unix time of its last start (0 if never started).
        now: supervisord's clock when it answered.
        exit_status: The last exit status (meaningful once it exited).
        spawn_error: Why the last start failed, if it did ("Exited too quickly ...").
    """

    name: str
    state: str
    pid: int
    started: float
    now: float
    exit_status: int
    spawn_error: str

    @property
    def uptime(self) -> float | None:
        """Seconds since the current process started, or None if none is alive."""
        return self.now - self.started if self.pid and self.state in LIVE_STATES else None

    @classmethod
    def from_rpc(cls, raw: dict[str, Any]) -> ProcessInfo:
        return cls(
            name=str(raw["name"]),
            state=str(raw["statename"]),
            pid=int(raw["pid"]),
            started=float(raw["start"]),
            now=float(raw["now"]),
            exit_status=int(raw["exitstatus"]),
            spawn_error=str(raw.get("spawnerr", "")),
        )


class SupervisorClient:
    """A supervisord reached through its unix socket."""

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        """Prepares the client (nothing is connected until a call).

        Args:
            socket_path: supervisord's ``[unix_http_server] file``.
            timeout: Seconds a call may take (``stop`` waits for the program to exit: keep it above
                the largest ``stopwaitsecs``).
        """
        self.socket_path = socket_path
        self._timeout = timeout

    def _call(self, method: str, *args: Any, tolerate: tuple[int, ...] = ()) -> Any:
        # ServerProxy insists on an http URL; the transport connects to the socket whatever it says.
        proxy = xmlrpc.client.ServerProxy("http://localhost", _UnixTransport(self.socket_path, self._timeout))
        try:
            return getattr(proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode in tolerate:
                return None
            raise SupervisorUnavailable(f"supervisord refused {method}{args}: {exc.faultString}") from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            raise SupervisorUnavailable(f"supervisord at {self.socket_path} did not answer ({exc})") from None

    def processes(self) -> dict[str, ProcessInfo]:
        """Every program, by name."""
        return {raw["name"]: ProcessInfo.from_rpc(raw) for raw in self._call("getAllProcessInfo")}

    def restart(self, name: str) -> None:
        """Stops ``name`` (TERM to its group, KILL after ``stopwaitsecs``) and starts it again.

        A stopped (SIGSTOP) process is continued first, so it can act on TERM rather than wait for KILL.
        Returns once the new process is spawned, without waiting ``startsecs``.
        """
        self._call("signalProcess", name, "CONT", tolerate=(_NOT_RUNNING,))
        self._call("stopProcess", name, True, tolerate=(_NOT_RUNNING,))
        self._call("startProcess", name, False, tolerate=(_ALREADY_STARTED,))

    def start(self, name: str) -> None:
        """Starts ``name`` (a program with ``autostart=false``); returns once it is spawned. Idempotent."""
        self._call("startProcess", name, False, tolerate=(_ALREADY_STARTED,))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__()
        self._path, self._timeout = path, timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path, self._timeout)
