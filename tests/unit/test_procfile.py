"""The runtime plan: ports, command lines, environment, and the files honcho reads."""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path

import pytest
from honcho.environ import parse, parse_procfile

from fraudctl.procfile import (
    ALL,
    PORT_KINDS,
    RUNTIME_MARKER,
    Plan,
    allocate_ports,
    build_plan,
    load_plan,
    render_env,
    render_procfile,
    write_plan,
)


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
    assert env["FRAUD_NATS_URL"] == f"nats://{plan.address('nats')}"
    assert env["FRAUD_TRITON_GRPC_URL"] == plan.address("triton")
    assert env["FRAUD_TRITON_HTTP_URL"] == plan.address("triton", "http")
    assert env["FRAUD_TRITON_MODEL_REPO"] == str(var / "triton" / "models")
    for name in ("ingest", "features", "scoring", "governance", "monitor"):
        comp = plan.components[name]
        assert comp.command == [sys.executable, "-m", f"services.{name}"]
        # Off the hot path: the notary and the monitor yield the CPU (see fraudshared.service.lower_cpu_priority).
        assert comp.env == ({"FRAUD_CPU_NICENESS": "19"} if name in ("governance", "monitor") else {})
        assert env[f"FRAUD_{name.upper()}_GRPC_PORT"] == str(comp.ports["grpc"])
        assert env[f"FRAUD_{name.upper()}_METRICS_PORT"] == str(comp.ports["metrics"])
        assert env[f"FRAUD_{name.upper()}_ADDR"] == plan.address(name) == f"127.0.0.1:{comp.ports['grpc']}"
    nats = plan.components["nats"].command
    assert str(plan.components["nats"].ports["client"]) in nats and str(var / "nats") in nats
    assert plan.components["nats"].env == {"GOMAXPROCS": "1"}
    triton = " ".join(plan.components["triton"].command)
    assert "tritonserver" in triton and str(var / "triton" / "models") in triton
    assert "0.0.0.0" not in triton


def test_a_subset_plans_only_those_components(tmp_path: Path) -> None:
    plan = build_plan(tmp_path, allocate_ports(["nats", "triton"]), sys.executable, ["nats", "triton"])
    assert list(plan.components) == ["nats", "triton"]
    assert not any(key.startswith("FRAUD_INGEST") for key in plan.env)


def test_procfile_and_env_file_read_back_through_honcho(plan: Plan) -> None:
    procs = parse_procfile(render_procfile(plan)).processes
    assert list(procs) == list(ALL)
    for name, line in procs.items():
        argv = shlex.split(line)
        assert argv[0] == "exec"  # the component replaces honcho's shell: honcho's pid is the component's
        assert argv[-len(plan.components[name].command) :] == plan.components[name].command
    assert "LD_LIBRARY_PATH=" in procs["triton"]  # only Triton gets the wheel's libraries
    assert "LD_LIBRARY_PATH" not in procs["ingest"]
    assert parse(render_env(plan)) == plan.env


def test_run_files_carry_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.s3cr3t-token")
    monkeypatch.setenv("FRAUD_SECRETS_FILE", "/very/secret/path")
    plan = build_plan(tmp_path, allocate_ports(ALL), sys.executable)
    paths = write_plan(plan)
    for path in (paths.procfile, paths.env_file, paths.plan_file):
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
