"""Where the local runtime keeps its files under one var dir (run files, logs, state, the development PKI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Where the runtime keeps its files under one var dir."""

    var_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def plan_file(self) -> Path:
        return self.run_dir / "plan.json"

    @property
    def supervisor_conf(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def supervisor_socket(self) -> Path:
        """The XML-RPC endpoint of supervisord (mode 0700); the only way in, there is no TCP listener."""
        return self.run_dir / "supervisor.sock"

    @property
    def supervisor_log(self) -> Path:
        """The log of supervisord itself: spawns, exits, state changes (not the components' output)."""
        return self.log_dir / "supervisord.log"

    def component_log(self, name: str) -> Path:
        """Where a component's stdout and stderr go."""
        return self.log_dir / f"{name}.log"

    @property
    def nats_store(self) -> Path:
        return self.var_dir / "nats"

    @property
    def model_repo(self) -> Path:
        return self.var_dir / "triton" / "models"

    @property
    def backend_dir(self) -> Path:
        return self.var_dir / "triton" / "backends"

    @property
    def pki_dir(self) -> Path:
        """The development CA (``ca.pem``, ``ca-key.pem``) and, under ``services/``, the platform's certificates."""
        return self.var_dir / "pki"

    def service_pki(self, name: str) -> Path:
        """``ca.pem``, ``cert.pem``, ``key.pem`` of ``service:<name>`` (a service, ``nats`` or ``bootstrap``)."""
        return self.pki_dir / "services" / name

    @property
    def credentials_dir(self) -> Path:
        """The development principals' credentials, one directory per name (``fraudctl --as <name>``)."""
        return self.var_dir / "credentials"

    @property
    def triton_admin_key(self) -> Path:
        """The value of the header Triton's model-management APIs require (0600; governance reads it)."""
        return self.pki_dir / "triton-admin-key"

    @property
    def nats_config(self) -> Path:
        """nats-server's configuration (TLS and the per-principal permissions), written at each `up`."""
        return self.run_dir / "nats-server.conf"
