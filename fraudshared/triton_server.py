"""Run the real Triton Inference Server shipped in the nvidia-pytriton wheel, on loopback ports.

`command_line()` + `environment()` let an external supervisor (supervisord) run it; `TritonServer` starts and
stops it in-process (tests, the embedded demo). The Python backend's stub processes are children of
tritonserver; the server runs in its own session, so stopping kills the whole process group.

Model management is locked with Triton's restricted protocols (`fraudshared.triton_admin`: the admin key).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from fraudshared.triton_admin import restricted_api_flags

LOOPBACK = "127.0.0.1"


class TritonNotFound(RuntimeError):
    """The tritonserver executable (PyPI package nvidia-pytriton) is not installed where expected."""


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready in time; the message carries its last log lines."""


@dataclass(frozen=True)
class TritonPaths:
    """Where the wheel keeps the server, its bundled libraries, its backends and the Python backend stub."""

    binary: Path
    libs_dir: Path
    backends_dir: Path
    python_stub: Path


def find_tritonserver() -> TritonPaths:
    """Locate tritonserver inside the installed nvidia-pytriton wheel.

    Raises:
        TritonNotFound: If the wheel, the binary or the stub for this Python minor version is missing.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotFound("Python package 'pytriton' is not installed (pip install nvidia-pytriton)")
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = TritonPaths(
        binary=root / "bin" / "tritonserver",
        libs_dir=package.parent / "nvidia_pytriton.libs",
        backends_dir=root / "backends",
        python_stub=root / "python_backend_stubs" / minor / "triton_python_backend_stub",
    )
    for what, path in vars(paths).items():
        if not path.exists():
            raise TritonNotFound(f"nvidia-pytriton is incomplete: {what} not found at {path}")
    return paths


def prepare_backends(dest_dir: Path, paths: TritonPaths | None = None) -> Path:
    """Assemble a backend directory (the wheel's backends + the Python stub in `python/`) at `dest_dir`.

    Idempotent and safe against a concurrent caller: the copy is built beside `dest_dir` and renamed.
    """
    paths = paths or find_tritonserver()
    dest_dir = Path(dest_dir)
    stub = dest_dir / "python" / paths.python_stub.name
    if stub.exists() and stub.stat().st_size == paths.python_stub.stat().st_size:
        return dest_dir
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = dest_dir.parent / f".{dest_dir.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    shutil.copytree(paths.backends_dir, staging, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(paths.python_stub, staging / "python" / paths.python_stub.name)
    if dest_dir.exists():  # an incomplete earlier copy (the complete case returned above)
        shutil.rmtree(dest_dir, ignore_errors=True)
    try:
        staging.rename(dest_dir)
    except OSError:  # another process renamed its complete copy first
        shutil.rmtree(staging, ignore_errors=True)
    return dest_dir


def site_packages() -> list[str]:
    """This interpreter's site-packages directories (numpy and onnxruntime for the Python backend)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def command_line(
    model_repo: Path,
    backend_dir: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    *,
    binary: Path | None = None,
    log_verbose: int = 0,
    exit_timeout_s: int = 5,
    admin_key: str | None = None,
) -> list[str]:
    """The tritonserver argv: explicit model control, every endpoint on loopback.

    Each server gets its own Python-backend shared-memory prefix (derived from its unique gRPC port), as
    Triton releases before 24.04 need when several servers share a machine. With `admin_key`, the model
    repository and model config APIs answer only requests carrying it (see the module docstring); the key
    is then part of the argv, so never log the returned list.
    """
    return [
        str(binary or find_tritonserver().binary),
        f"--model-repository={model_repo}",
        f"--backend-directory={backend_dir}",
        "--model-control-mode=explicit",
        f"--grpc-address={LOOPBACK}",
        f"--grpc-port={grpc_port}",
        f"--http-address={LOOPBACK}",
        f"--http-port={http_port}",
        f"--metrics-address={LOOPBACK}",
        f"--metrics-port={metrics_port}",
        "--allow-metrics=true",
        f"--backend-config=python,shm-region-prefix-name=fraud_triton_{grpc_port}_",
        "--backend-config=python,shm-default-byte-size=4194304",
        f"--exit-timeout-secs={exit_timeout_s}",
        f"--log-verbose={log_verbose}",
        *([] if admin_key is None else restricted_api_flags(admin_key)),
    ]


def environment(base: Mapping[str, str] | None = None, paths: TritonPaths | None = None) -> dict[str, str]:
    """Environment for tritonserver: bundled libraries on LD_LIBRARY_PATH, this venv on PYTHONPATH.

    The Python backend stub embeds the system libpython and ignores PYTHONPATH for sys.path, so the
    model.py we write appends PYTHONPATH's entries to sys.path itself.
    """
    paths = paths or find_tritonserver()
    env = dict(os.environ if base is None else base)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(paths.libs_dir), env.get("LD_LIBRARY_PATH")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*site_packages(), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    """A loopback port that was free a moment ago (the caller retries if another process takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class TritonServer:
    """tritonserver as a context manager, on free loopback ports, with a bounded readiness wait.

    With ``admin_key``, model management answers only requests carrying it (see the module docstring).
    """

    def __init__(
        self,
        model_repo: Path,
        work_dir: Path,
        *,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 15.0,
        admin_key: str | None = None,
    ) -> None:
        self.model_repo = Path(model_repo)
        self.admin_key = admin_key
        self.work_dir = Path(work_dir)
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.grpc_port = self.http_port = self.metrics_port = 0
        self.log_path = self.work_dir / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def start(self, attempts: int = 3, *, same_ports: bool = False) -> TritonServer:
        """Start and wait until /v2/health/ready answers 200; retries when a port was taken meanwhile.

        With `same_ports`, a restart binds the ports of the previous start (clients reconnect to the same
        address, as after a crash of a real deployment); no retry on other ports then.

        Raises:
            TritonNotFound: If the wheel is missing.
            TritonStartError: If the server exits or is not ready within the timeout.
        """
        paths = find_tritonserver()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.model_repo.mkdir(parents=True, exist_ok=True)
        backends = prepare_backends(self.work_dir / "backends", paths)
        keep = same_ports and self.grpc_port != 0
        for attempt in range(1, 1 + (1 if keep else attempts)):
            if not keep:
                self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
            argv = command_line(
                self.model_repo,
                backends,
                self.grpc_port,
                self.http_port,
                self.metrics_port,
                binary=paths.binary,
                admin_key=self.admin_key,
            )
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=environment(paths=paths), start_new_session=True
                )
            try:
                self._wait_ready()
                return self
            except TritonStartError:
                self.stop()
                if keep or attempt == attempts or "already in use" not in self.log_tail(20):
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise TritonStartError(f"tritonserver exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TritonStartError(f"tritonserver not ready after {self.startup_timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log (for error messages)."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and every process of its group; safe to call twice.

        SIGTERM lets it unload models and stop its stubs; SIGKILL follows after the timeout, then SIGKILL
        to whatever is left in its process group (stubs orphaned by a crash).
        """
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
