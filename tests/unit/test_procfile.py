"""The runtime plan: ports, command lines, environment, and supervisord's configuration read back by supervisord."""

from __future__ import annotations

import shlex
import socket
import stat
import sys
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from fraudctl import caller, supervisor_conf
from fraudctl.credentials import DEV_ROLES, ensure_credentials
from fraudctl.procfile import (
    ALL,
    PORT_KINDS,
    RUNTIME_MARKER,
    SERVICES,
    TOKEN_KIND,
    Paths,
    Plan,
    allocate_ports,
    build_plan,
    load_plan,
    pin_variables,
    token_address,
    write_plan,
)
from fraudctl.supervisor_conf import RestartPolicy
from fraudshared.identity import ClientCredential, CredentialFiles, DevCA, Principal


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return build_plan(tmp_path / "var", allocate_ports(ALL), sys.executable)


def test_allocate_ports_gives_every_port_a_distinct_free_loopback_port() -> None:
    ports = allocate_ports(ALL)
    assert set(ports) == set(ALL)
    flat = [port for comp in ALL for port in ports[comp].values()]
    assert len(flat) == sum(len(PORT_KINDS[c]) for c in ALL) == len(set(flat))
    for port in flat:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free right now


def test_allocate_ports_keeps_pinned_ports_and_avoids_them_elsewhere() -> None:
    environ = {"FRAUD_NATS_PORT": "14222", "FRAUD_TRITON_HTTP_PORT": "18000", "FRAUD_INGEST_GRPC_PORT": "15051"}
    ports = allocate_ports(["nats", "triton", "ingest"], environ)
    assert ports["nats"]["client"] == 14222
    assert ports["triton"]["http"] == 18000
    assert ports["ingest"]["grpc"] == 15051
    assert ports["nats"]["monitor"] not in {14222, 18000, 15051}


def test_a_bad_pin_names_its_variable() -> None:
    with pytest.raises(ValueError, match="FRAUD_NATS_PORT"):
        allocate_ports(["nats"], {"FRAUD_NATS_PORT": "http"})


def test_plan_wires_every_component_to_its_peers(plan: Plan, tmp_path: Path) -> None:
    var = (tmp_path / "var").resolve()
    env = plan.env
    assert env["FRAUD_VAR_DIR"] == str(var) == env[RUNTIME_MARKER]
    assert env["FRAUD_NATS_URL"] == f"tls://{plan.address('nats')}"
    assert env["FRAUD_TRITON_GRPC_URL"] == plan.address("triton")
    assert env["FRAUD_TRITON_HTTP_URL"] == plan.address("triton", "http")
    assert env["FRAUD_TRITON_MODEL_REPO"] == str(var / "triton" / "models")
    for name in ("ingest", "features", "scoring", "governance", "monitor"):
        comp = plan.components[name]
        assert comp.command == [sys.executable, "-m", f"services.{name}"]
        # Off the hot path: the notary and the monitor yield the CPU (see fraudshared.service.lower_cpu_priority).
        assert comp.env.get("FRAUD_CPU_NICENESS") == ("19" if name in ("governance", "monitor") else None)
        assert comp.env["FRAUD_SERVICE_NAME"] == name
        assert env[f"FRAUD_{name.upper()}_GRPC_PORT"] == str(comp.ports["grpc"])
        assert env[f"FRAUD_{name.upper()}_METRICS_PORT"] == str(comp.ports["metrics"])
        assert env[f"FRAUD_{name.upper()}_ADDR"] == plan.address(name) == f"127.0.0.1:{comp.ports['grpc']}"
    nats = plan.components["nats"].command
    assert nats[1:] == ["-c", str(var / "run" / "nats-server.conf")]  # ports, TLS and users live in the config
    assert plan.components["nats"].env == {"GOMAXPROCS": "1"}
    triton = plan.components["triton"].command
    # The launcher reads the admin key file and execs tritonserver: the key is in no run file.
    assert triton[:5] == [sys.executable, "-m", "fraudctl.triton_launch", str(var / "pki" / "triton-admin-key"), "--"]
    assert "tritonserver" in triton[5] and str(var / "triton" / "models") in " ".join(triton)
    assert "0.0.0.0" not in " ".join(triton) and not any("restricted" in arg for arg in triton)


def test_each_service_gets_the_ca_and_its_own_certificate_only(plan: Plan, tmp_path: Path) -> None:
    pki = (tmp_path / "var").resolve() / "pki"
    assert not any("TLS" in key for key in plan.env)  # nothing TLS in the environment every process shares
    for name in ("ingest", "features", "scoring", "governance", "monitor"):
        env = plan.components[name].env
        tls = {key: value for key, value in env.items() if "TLS" in key}
        assert tls == {
            "FRAUD_TLS_CA_FILE": str(pki / "services" / name / "ca.pem"),
            f"FRAUD_{name.upper()}_TLS_CERT_FILE": str(pki / "services" / name / "cert.pem"),
            f"FRAUD_{name.upper()}_TLS_KEY_FILE": str(pki / "services" / name / "key.pem"),
        }
        others = [other for other in ("ingest", "features", "scoring", "governance", "monitor") if other != name]
        assert not any(f"/services/{other}/" in value for value in env.values() for other in others)
        # Only governance manages Triton's models, so only it learns where the admin key is.
        assert ("FRAUD_TRITON_ADMIN_KEY_FILE" in env) == (name == "governance")
    for name in ("nats", "triton"):
        assert not any("TLS" in key or "/pki/services/" in value for key, value in plan.components[name].env.items())


def test_a_subset_plans_only_those_components(tmp_path: Path) -> None:
    plan = build_plan(tmp_path, allocate_ports(["nats", "triton"]), sys.executable, ["nats", "triton"])
    assert list(plan.components) == ["nats", "triton"]
    assert not any(key.startswith("FRAUD_INGEST") for key in plan.env)


def read_back(plan: Plan, policy: RestartPolicy, deferred: list[str] | None = None) -> ServerOptions:
    """Writes supervisord.conf for ``plan`` and parses it with supervisord's own option parser."""
    paths = supervisor_conf.write(plan, sys.executable, policy, deferred or [])
    paths.log_dir.mkdir(parents=True, exist_ok=True)  # supervisord's parser insists the log dir exists
    options = ServerOptions()
    options.configfile = str(paths.supervisor_conf)
    options.process_config(do_usage=False)
    return options


def test_supervisord_reads_back_every_component_with_its_command_env_and_restart_policy(plan: Plan) -> None:
    deferred = ["governance", "features", "scoring", "monitor", "ingest"]
    options = read_back(plan, RestartPolicy(startsecs=7, startretries=4), deferred)
    programs = {group.name: group.process_configs[0] for group in sorted(options.process_group_configs)}
    # supervisord starts by ascending priority and stops by descending: NATS first up and last down, the
    # front door (ingest) first down, so no request arrives while its peers are stopping.
    order = ["nats", "triton", "governance", "features", "scoring", "monitor", "ingest", "watchdog"]
    assert list(programs) == order
    paths = Paths(plan.var_dir)
    for name, comp in plan.components.items():
        program = programs[name]
        # No shell and no wrapper: supervisord execs the component itself, so its pid is the component's.
        assert shlex.split(program.command) == comp.command
        assert program.environment == {**plan.env, **comp.env}
        assert (program.startsecs, program.startretries) == (7, 4)
        assert program.autorestart is RestartUnconditionally
        # The services start once `up` has made the streams and grants; supervisord starts the rest itself.
        assert program.autostart == (name not in deferred)
        assert program.stopasgroup and program.killasgroup and 0 < program.stopwaitsecs <= 15
        assert program.redirect_stderr and program.stdout_logfile == str(paths.component_log(name))
    assert "LD_LIBRARY_PATH" in programs["triton"].environment  # only Triton gets the wheel's libraries
    assert "LD_LIBRARY_PATH" not in programs["ingest"].environment
    assert shlex.split(programs["watchdog"].command) == [sys.executable, "-m", "fraudctl.watchdog"]
    # XML-RPC only through a unix socket under var/run that only its owner may open; no TCP server.
    assert [(c["family"], c["file"], c["chmod"]) for c in options.configroot.supervisord.server_configs] == [
        (socket.AF_UNIX, str(paths.supervisor_socket), 0o700)
    ]
    daemon = options.configroot.supervisord
    assert daemon.nodaemon and daemon.logfile == str(paths.supervisor_log) and daemon.logfile_maxbytes == 0


def test_a_value_supervisord_cannot_carry_is_refused(tmp_path: Path) -> None:
    plan = build_plan(tmp_path / "100%", allocate_ports(["nats"]), sys.executable, ["nats"])
    with pytest.raises(ValueError, match="'%'"):
        supervisor_conf.render(plan, sys.executable, RestartPolicy())


def test_restart_policy_comes_from_the_environment_and_names_a_bad_variable() -> None:
    assert RestartPolicy.from_env({}) == RestartPolicy(startsecs=10, startretries=3)
    assert RestartPolicy.from_env({"FRAUD_SUPERVISOR_STARTRETRIES": "1"}).startretries == 1
    with pytest.raises(ValueError, match="FRAUD_SUPERVISOR_STARTSECS"):
        RestartPolicy.from_env({"FRAUD_SUPERVISOR_STARTSECS": "-1"})


def test_run_files_carry_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.s3cr3t-token")
    monkeypatch.setenv("FRAUD_SECRETS_FILE", "/very/secret/path")
    plan = build_plan(tmp_path, allocate_ports(ALL), sys.executable)
    paths = write_plan(plan)
    supervisor_conf.write(plan, sys.executable, RestartPolicy())
    for path in (paths.supervisor_conf, paths.plan_file):
        text = path.read_text()
        assert "s3cr3t" not in text and "/very/secret/path" not in text
        for word in ("VAULT", "TOKEN", "PASSWORD", "SECRET", "HMAC"):
            assert word not in text.upper(), f"{word} in {path.name}"


def test_plan_round_trips_through_plan_json(plan: Plan) -> None:
    write_plan(plan)
    loaded = load_plan(plan.var_dir)
    assert loaded == plan
    assert loaded.address("scoring") == plan.address("scoring")


def test_load_plan_without_a_plan_is_none(tmp_path: Path) -> None:
    assert load_plan(tmp_path) is None


def test_two_pins_on_one_port_are_refused() -> None:
    with pytest.raises(ValueError, match="FRAUD_NATS_MONITOR_PORT and FRAUD_NATS_PORT pin the same port"):
        allocate_ports(["nats"], {"FRAUD_NATS_PORT": "14222", "FRAUD_NATS_MONITOR_PORT": "14222"})


# ---- OIDC: a token port per service, and where a bearer-token caller dials -------------------------------------

OIDC_ENV = {
    "FRAUD_OIDC_ISSUER": "https://issuer.test",
    "FRAUD_OIDC_AUDIENCE": "fraud-platform",
    "FRAUD_OIDC_JWKS_URL": "http://127.0.0.1:9/jwks.json",
}


def test_without_oidc_no_service_has_a_token_port(plan: Plan) -> None:
    for name in SERVICES:
        assert TOKEN_KIND not in plan.components[name].ports
        assert not any("TOKEN" in key for key in plan.components[name].env)
        assert token_address(plan, name) is None
    assert not any(key.startswith("FRAUD_OIDC") for key in plan.env)


def test_with_oidc_each_service_gets_its_own_token_port_and_the_oidc_settings(tmp_path: Path) -> None:
    plan = build_plan(tmp_path, allocate_ports(ALL, OIDC_ENV), sys.executable, ALL, OIDC_ENV)
    flat = [port for comp in plan.components.values() for port in comp.ports.values()]
    assert len(flat) == len(set(flat))
    for name in SERVICES:
        comp = plan.components[name]
        assert comp.env[f"FRAUD_{name.upper()}_GRPC_TOKEN_PORT"] == str(comp.ports[TOKEN_KIND])
        assert token_address(plan, name) == f"127.0.0.1:{comp.ports[TOKEN_KIND]}"
        others = [f"FRAUD_{o.upper()}_GRPC_TOKEN_PORT" for o in SERVICES if o != name]
        assert not any(key in comp.env for key in others)  # each service learns only its own token port
    assert TOKEN_KIND not in plan.components["nats"].ports and token_address(plan, "nats") is None
    assert {key: plan.env[key] for key in OIDC_ENV} == OIDC_ENV  # every process verifies tokens the same way
    write_plan(plan)
    assert load_plan(plan.var_dir) == plan


def test_a_token_port_is_pinned_like_the_others() -> None:
    environ = {**OIDC_ENV, "FRAUD_INGEST_TOKEN_PORT": "15443", "FRAUD_SCORING_GRPC_TOKEN_PORT": "15444"}
    ports = allocate_ports(["ingest", "scoring"], environ)
    assert ports["ingest"][TOKEN_KIND] == 15443 and ports["scoring"][TOKEN_KIND] == 15444
    assert pin_variables("ingest", TOKEN_KIND) == ["FRAUD_INGEST_TOKEN_PORT", "FRAUD_INGEST_GRPC_TOKEN_PORT"]
    with pytest.raises(ValueError, match="FRAUD_INGEST_TOKEN_PORT and FRAUD_INGEST_GRPC_PORT pin the same port"):
        allocate_ports(["ingest"], {**OIDC_ENV, "FRAUD_INGEST_GRPC_PORT": "15443", "FRAUD_INGEST_TOKEN_PORT": "15443"})
    assert TOKEN_KIND not in allocate_ports(["ingest"], {"FRAUD_INGEST_TOKEN_PORT": "15443"})["ingest"]


def test_a_bearer_token_dials_the_token_port_and_a_certificate_the_main_port(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    token = ClientCredential(ca=ca, token="not-a-real-jwt")
    files = CredentialFiles.in_dir(tmp_path)
    certificate = ClientCredential(ca=ca, files=files)
    plan = build_plan(tmp_path / "var", allocate_ports(ALL, OIDC_ENV), sys.executable, ALL, OIDC_ENV)
    write_plan(plan)
    var = plan.var_dir
    for name in SERVICES:
        assert caller.dial_address(plan.address(name), var, token) == token_address(plan, name)
        assert caller.dial_address(plan.address(name), var, certificate) == plan.address(name)
    assert caller.dial_address("governance.example:443", var, token) == "governance.example:443"  # not ours
    plain = build_plan(tmp_path / "plain", allocate_ports(ALL), sys.executable)
    write_plan(plain)
    with pytest.raises(caller.CredentialError, match="accepts no bearer tokens: start it with FRAUD_OIDC_ISSUER"):
        caller.dial_address(plain.address("governance"), plain.var_dir, token)


# ---- the development PKI `fraudctl up` keeps under var/ -------------------------------------------------------


def test_credentials_are_kept_and_issued_again_only_when_lost_foreign_expiring_or_renamed(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "var")
    first = ensure_credentials(paths)
    assert len(first.issued) == len(DEV_ROLES) + 7  # five services, nats, bootstrap
    assert set(first.users) == set(DEV_ROLES) and first.services["governance"].cert.parent == paths.service_pki(
        "governance"
    )
    assert ensure_credentials(paths).issued == ()  # kept across restarts

    (paths.credentials_dir / "analyst" / "key.pem").unlink()  # lost
    foreign = DevCA.load_or_create(tmp_path / "other").issue(Principal("user", "dev-scorer"), tmp_path / "x")
    for name in ("cert.pem", "key.pem"):  # a certificate of another CA in scorer's place
        (paths.credentials_dir / "scorer" / name).write_bytes((foreign.cert.parent / name).read_bytes())
    soon = DevCA.load_or_create(paths.pki_dir).issue(Principal("user", "dev-labeler"), tmp_path / "soon", days=0)
    for name in ("cert.pem", "key.pem"):  # expires within a day
        (paths.credentials_dir / "labeler" / name).write_bytes((soon.cert.parent / name).read_bytes())
    assert sorted(ensure_credentials(paths).issued) == ["user:dev-analyst", "user:dev-labeler", "user:dev-scorer"]

    renamed = ensure_credentials(paths, trust_domain="bank.example")  # every SPIFFE id changes
    assert len(renamed.issued) == len(first.issued)
    assert stat.S_IMODE(paths.triton_admin_key.stat().st_mode) == 0o600
    assert paths.triton_admin_key.read_text() == ensure_credentials(paths, "bank.example").triton_admin_key.read_text()
