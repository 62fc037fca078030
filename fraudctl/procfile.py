"""The local runtime's plan: which processes run, on which loopback ports, with which environment.

Everything here is a pure function of its arguments (no process is started), so the plan is unit-tested
on its own. `fraudctl.runtime` writes it under ``var/run/``: ``plan.json``, from which other commands
(status, logs, the demo) read the components' addresses, and supervisord's configuration rendered from it
by `fraudctl.supervisor_conf`. (The module keeps its historical name: it once rendered a Procfile.)
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fraudctl.paths import Paths

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]  # the checkout: every component runs with it as its cwd
INFRA = ("nats", "triton")
SERVICES = ("ingest", "features", "scoring", "governance", "monitor")
ALL = INFRA + SERVICES
# The first kind of each component is its primary port: its address and its FRAUD_<COMPONENT>_PORT pin.
PORT_KINDS: dict[str, tuple[str, ...]] = {
    "nats": ("client", "monitor"),
    "triton": ("grpc", "http", "metrics"),
    **{name: ("grpc", "metrics") for name in SERVICES},
}
# Set (to the absolute var dir) in the environment of every process supervisord starts, so `down` finds strays.
RUNTIME_MARKER = "FRAUD_RUNTIME_DIR"
# With FRAUD_OIDC_ISSUER set, each service also gets a TOKEN_KIND port: TLS without a client certificate, for
# OIDC bearer-token callers (fraudshared.service reads it as FRAUD_<SERVICE>_GRPC_TOKEN_PORT).
TOKEN_KIND = "token"
OIDC_VARIABLES = ("FRAUD_OIDC_ISSUER", "FRAUD_OIDC_AUDIENCE", "FRAUD_OIDC_JWKS_URL", "FRAUD_OIDC_PRINCIPAL_CLAIM")

Ports = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Component:
    """One supervised process: its command line, loopback ports and process-specific environment."""

    name: str
    command: list[str]
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        """The primary port (NATS client, Triton gRPC, a service's gRPC)."""
        return self.ports[PORT_KINDS[self.name][0]]


@dataclass(frozen=True)
class Plan:
    """What `fraudctl up` runs; ``env`` is the environment shared by all processes."""

    var_dir: Path
    components: dict[str, Component]
    env: dict[str, str]

    def address(self, component: str, kind: str | None = None) -> str:
        """Returns ``127.0.0.1:<port>`` of a component's primary port (or of port ``kind``).

        Raises:
            KeyError: If the component is not in the plan or has no such port.
        """
        comp = self.components[component]
        return f"{HOST}:{comp.port if kind is None else comp.ports[kind]}"

    def to_json(self) -> str:
        comps = {n: {"command": c.command, "ports": c.ports, "env": c.env} for n, c in self.components.items()}
        return json.dumps({"var_dir": str(self.var_dir), "components": comps, "env": self.env}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        comps = {n: Component(n, c["command"], c["ports"], c.get("env", {})) for n, c in raw["components"].items()}
        return cls(Path(raw["var_dir"]), comps, raw["env"])


def oidc_enabled(environ: Mapping[str, str]) -> bool:
    """True when ``environ`` turns bearer tokens on (FRAUD_OIDC_ISSUER set): the services then open token ports."""
    return bool(environ.get("FRAUD_OIDC_ISSUER", "").strip())


def port_kinds(component: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The component's port kinds: `PORT_KINDS`, plus `TOKEN_KIND` for a service when OIDC is on."""
    kinds = PORT_KINDS[component]
    return (*kinds, TOKEN_KIND) if component in SERVICES and oidc_enabled(environ) else kinds


def pin_variables(component: str, kind: str) -> list[str]:
    """Environment variables that pin a port, most specific first (``FRAUD_NATS_MONITOR_PORT``...).

    A token port is pinned by ``FRAUD_<SERVICE>_TOKEN_PORT`` or by the service's own variable
    ``FRAUD_<SERVICE>_GRPC_TOKEN_PORT``.
    """
    names = [f"FRAUD_{component.upper()}_{kind.upper()}_PORT"]
    if kind == PORT_KINDS[component][0]:
        names.append(f"FRAUD_{component.upper()}_PORT")
    if kind == TOKEN_KIND:
        names.append(f"FRAUD_{component.upper()}_GRPC_TOKEN_PORT")
    return names


def pinned_ports(components: Iterable[str], environ: Mapping[str, str]) -> dict[tuple[str, str], tuple[int, str]]:
    """Finds ports the user fixed by environment variable.

    Returns:
        ``(component, kind) -> (port, variable name)`` for every pinned port.

    Raises:
        ValueError: If a pin is not an integer in 1..65535, or two pins are equal (the message names them).
    """
    pins: dict[tuple[str, str], tuple[int, str]] = {}
    for comp in components:
        for kind in port_kinds(comp, environ):
            for var in pin_variables(comp, kind):
                raw = environ.get(var, "").strip()
                if not raw:
                    continue
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise ValueError(f"{var} must be a port number (1-65535), got {raw!r}")
                clash = [v for port, v in pins.values() if port == int(raw)]
                if clash:
                    raise ValueError(f"{var} and {clash[0]} pin the same port {raw}")
                pins[(comp, kind)] = (int(raw), var)
                break
    return pins


def allocate_ports(components: Sequence[str], environ: Mapping[str, str] | None = None) -> Ports:
    """Gives every port of every component a loopback port: the pinned one, else a free one.

    Free ports are taken by binding port 0 while holding all sockets open, so no two are equal.

    Args:
        components: Component names (from `ALL`).
        environ: Where pins are read (``FRAUD_<COMPONENT>[_<KIND>]_PORT``) and whether OIDC is on (then each
            service also gets a ``token`` port); none when omitted.

    Returns:
        ``component -> kind -> port``.
    """
    environ = environ or {}
    pins = pinned_ports(components, environ)
    taken = {port for port, _ in pins.values()}
    ports: Ports = {}
    held: list[socket.socket] = []
    try:
        for comp in components:
            ports[comp] = {}
            for kind in port_kinds(comp, environ):
                if (comp, kind) in pins:
                    ports[comp][kind] = pins[(comp, kind)][0]
                    continue
                while True:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(sock)
                    sock.bind((HOST, 0))
                    port = sock.getsockname()[1]
                    if port not in taken:
                        break
                taken.add(port)
                ports[comp][kind] = port
    finally:
        for sock in held:
            sock.close()
    return ports


# governance (registry, notary) and monitor never sit on the path of a decision.
BACKGROUND_SERVICES = ("governance", "monitor")
BACKGROUND_NICENESS = 19


def build_plan(
    var_dir: Path,
    ports: Ports,
    python: str,
    components: Sequence[str] = ALL,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Builds each component's command line and the environment every process shares.

    Args:
        var_dir: The runtime's var dir (made absolute).
        ports: From `allocate_ports`; must cover ``components``. A service's ``token`` port (there when
            OIDC is on) becomes its FRAUD_<SERVICE>_GRPC_TOKEN_PORT.
        python: Interpreter that runs the services (``python -m services.<name>``).
        components: Which components to run, a subset of `ALL`.
        environ: `fraudctl up`'s environment: its FRAUD_OIDC_* variables are written into the shared
            environment (so plan.json records how tokens are verified); none when omitted.

    Returns:
        The plan.
    """
    paths = Paths(var_dir.resolve())
    comps: dict[str, Component] = {}
    env = {
        "FRAUD_VAR_DIR": str(paths.var_dir),
        RUNTIME_MARKER: str(paths.var_dir),
        "PYTHONUNBUFFERED": "1",  # supervisord reads a pipe; unbuffered output keeps log lines timely.
    }
    source = environ or {}
    if oidc_enabled(source):
        env.update({var: source[var].strip() for var in OIDC_VARIABLES if source.get(var, "").strip()})
    for name in components:
        p = ports[name]
        if name == "nats":
            from fraudshared import nats_server  # Imported when used: readers of plan.json need neither binary.

            # Ports, store, TLS and the per-principal users are in the config `fraudctl up` renders from the plan
            # (nats_config_text): one file, so nothing on the command line can disagree with it.
            cmd = nats_server.command_line(
                port=p["client"], store_dir=paths.nats_store, monitor_port=p["monitor"], config_file=paths.nats_config
            )
            # One Go scheduler thread: at this load nats-server needs a fraction of a core, and with two its idle
            # threads spin on every wake-up (measured: 0.72 vs 0.92-0.96 ms of nats CPU per decision at 300 tx/s).
            comps[name] = Component(name, [str(a) for a in cmd], dict(p), {"GOMAXPROCS": "1"})
            env["FRAUD_NATS_URL"] = f"tls://{HOST}:{p['client']}"
        elif name == "triton":
            from fraudshared import triton_server

            cmd = triton_server.command_line(paths.model_repo, paths.backend_dir, p["grpc"], p["http"], p["metrics"])
            # The launcher adds the admin key's flags and execs tritonserver: the key stays out of the run files.
            launch = [python, "-m", "fraudctl.triton_launch", str(paths.triton_admin_key), "--"]
            comps[name] = Component(name, [*launch, *map(str, cmd)], dict(p), triton_server.environment(base={}))
            env["FRAUD_TRITON_GRPC_URL"] = f"{HOST}:{p['grpc']}"
            env["FRAUD_TRITON_HTTP_URL"] = f"{HOST}:{p['http']}"
            env["FRAUD_TRITON_MODEL_REPO"] = str(paths.model_repo)
        else:
            # Off-hot-path services yield the CPU to the decision path when the machine is saturated.
            own = {"FRAUD_CPU_NICENESS": str(BACKGROUND_NICENESS)} if name in BACKGROUND_SERVICES else {}
            own.update(service_tls_env(paths, name))
            own["FRAUD_SERVICE_NAME"] = name  # whose secrets it may read (fraudshared.secrets)
            if name == "governance" and "triton" in components:
                own["FRAUD_TRITON_ADMIN_KEY_FILE"] = str(paths.triton_admin_key)
            if TOKEN_KIND in p:
                own[f"FRAUD_{name.upper()}_GRPC_TOKEN_PORT"] = str(p[TOKEN_KIND])
            comps[name] = Component(name, [python, "-m", f"services.{name}"], dict(p), own)
            env[f"FRAUD_{name.upper()}_GRPC_PORT"] = str(p["grpc"])
            env[f"FRAUD_{name.upper()}_METRICS_PORT"] = str(p["metrics"])
            env[f"FRAUD_{name.upper()}_ADDR"] = f"{HOST}:{p['grpc']}"
    return Plan(paths.var_dir, comps, env)


def nats_config_text(plan: Plan, trust_domain: str = "fraud.local") -> str:
    """nats-server's configuration for the plan: JetStream, TLS (``service:nats``'s cert), users per principal."""
    from fraudshared import nats_access
    from fraudshared.identity.pki import CredentialFiles

    paths, ports = Paths(plan.var_dir), plan.components["nats"].ports
    return nats_access.render_config(
        port=ports["client"],
        monitor_port=ports["monitor"],
        host=HOST,
        store_dir=paths.nats_store,
        # Same server name as fraudshared's embedded NatsServer: JetStream keys a data dir's state on it.
        server_name="fraud-embedded",
        tls=CredentialFiles.in_dir(paths.service_pki("nats")),
        trust_domain=trust_domain,
    )


def service_tls_env(paths: Paths, service: str) -> dict[str, str]:
    """A service's TLS variables: the CA, and ITS OWN certificate and key (never another service's)."""
    files = paths.service_pki(service)
    return {
        "FRAUD_TLS_CA_FILE": str(files / "ca.pem"),
        f"FRAUD_{service.upper()}_TLS_CERT_FILE": str(files / "cert.pem"),
        f"FRAUD_{service.upper()}_TLS_KEY_FILE": str(files / "key.pem"),
    }


def token_address(plan: Plan, component: str) -> str | None:
    """``127.0.0.1:<token port>`` of a service started with OIDC, else None (no bearer tokens accepted)."""
    comp = plan.components.get(component)
    return f"{HOST}:{comp.ports[TOKEN_KIND]}" if comp is not None and TOKEN_KIND in comp.ports else None


def write_plan(plan: Plan) -> Paths:
    """Writes ``plan.json`` under ``<var>/run/`` and returns the paths."""
    paths = Paths(plan.var_dir)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    paths.plan_file.write_text(plan.to_json())
    return paths


def load_plan(var_dir: Path) -> Plan | None:
    """Reads the plan of the runtime started in ``var_dir``, or None if none is running or planned."""
    try:
        return Plan.from_json(Paths(var_dir.resolve()).plan_file.read_text())
    except (OSError, ValueError, KeyError):
        return None


def running_nats_url(var_dir: Path) -> str | None:
    """FRAUD_NATS_URL of the runtime started in ``var_dir`` (for CLI commands that read the log), or None."""
    plan = load_plan(var_dir)
    return plan.env.get("FRAUD_NATS_URL") if plan is not None else None
