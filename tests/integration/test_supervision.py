"""Supervision under `fraudctl up`: restart after kill -9, the crash-loop limit, the Triton watchdog, and
`up` right after `down` on pinned ports. Real supervisord, nats-server, tritonserver and a real service."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fraudctl import health
from fraudctl.procfile import load_plan
from tests.integration.test_runtime import count_nats_servers, fraudctl, processes_referencing

pytestmark = pytest.mark.integration


@pytest.fixture
def var(tmp_path: Path) -> Iterator[Path]:
    var = tmp_path / "var"
    yield var
    fraudctl(var, "down")
    assert processes_referencing(var) == []


def status_row(var: Path, component: str) -> list[str]:
    """The status table's cells for ``component``: name, address, pid, health, uptime, state, restarts."""
    out = fraudctl(var, "status").stdout
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").replace("┃", "│").split("│")]
        if cells and cells[0] == component:
            return cells
    raise AssertionError(f"no row for {component} in:\n{out}")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


def pid_of(var: Path, needle: str) -> int:
    """The pid of the process of ``var`` whose command line holds ``needle``; 0 while there is none."""
    return next((int(p.split(":")[0]) for p in processes_referencing(var) if needle in p), 0)


def test_a_killed_service_is_back_serving_on_its_address_and_counted_as_one_restart(var: Path) -> None:
    assert fraudctl(var, "up", "--only", "nats,governance").returncode == 0
    plan = load_plan(var)
    assert plan is not None
    before = status_row(var, "governance")
    assert before[1] == plan.address("governance") and before[3] == "SERVING" and before[6] == "0", before

    os.kill(int(before[2]), signal.SIGKILL)
    wait_for(lambda: status_row(var, "governance")[3] == "SERVING", 30, "governance SERVING again")
    after = status_row(var, "governance")
    assert after[2] != before[2]  # a new process...
    assert after[1] == plan.address("governance")  # ...on the same address, so its peers find it again
    assert after[6] == "1" and after[5] in ("STARTING", "RUNNING"), after
    assert status_row(var, "nats")[6] == "0"  # nothing else was touched
    assert fraudctl(var, "status").returncode == 0


def test_a_component_that_exits_at_once_every_time_ends_fatal_and_status_says_so(var: Path) -> None:
    retries = 2
    # startsecs long enough that a failing start always exits within it, even on a loaded machine (with 1 s, a
    # nats-server slow to fail counted as "ran long enough" and was restarted outside the retry count).
    policy = {"FRAUD_SUPERVISOR_STARTRETRIES": str(retries), "FRAUD_SUPERVISOR_STARTSECS": "5"}
    assert fraudctl(var, "up", "--only", "nats", env=policy).returncode == 0
    wait_for(lambda: status_row(var, "nats")[5] == "RUNNING", 20, "nats RUNNING (up for startsecs)")
    # From now on every start of nats-server fails at once: its JetStream directory is a file.
    (var / "nats").rename(var / "nats.moved")
    (var / "nats").write_text("a file where JetStream wants its directory")
    os.kill(pid_of(var, "nats-server"), signal.SIGKILL)

    wait_for(lambda: status_row(var, "nats")[5] == "FATAL", 40, "nats FATAL")
    row = status_row(var, "nats")
    # The crash restarted it at once (it had run past startsecs), then `retries` more quick exits backed off.
    assert row[3] == "DOWN" and row[2] == "-" and row[6] == str(1 + retries), row
    assert count_nats_servers(var) == 0
    assert fraudctl(var, "status").returncode == 1
    log = fraudctl(var, "logs", "supervisord").stdout
    assert "gave up: nats entered FATAL state, too many start retries too quickly" in log


def test_the_watchdog_restarts_a_hung_triton(var: Path) -> None:
    # Probing every second and acting after two failures keeps this test short; the defaults are 2 s and 3. A
    # Triton stopped before the watchdog saw it answer once counts as starting up until the grace ends: 15 s
    # (not 60) bounds that race (Triton's start, through its launcher, can end between two probes).
    env = {"FRAUD_WATCHDOG_INTERVAL_S": "1", "FRAUD_WATCHDOG_FAILURES": "2", "FRAUD_WATCHDOG_TIMEOUT_S": "1"}
    env["FRAUD_WATCHDOG_GRACE_S"] = "15"
    started = fraudctl(var, "up", "--only", "triton", env=env)
    assert started.returncode == 0, started.stderr
    plan = load_plan(var)
    assert plan is not None
    hung = pid_of(var, "tritonserver")
    wait_for(lambda: "watching triton" in (var / "log" / "watchdog.log").read_text(), 20, "watchdog started")

    os.kill(hung, signal.SIGSTOP)  # alive, but answers nothing: supervisord alone would never notice
    try:
        # Between the stop and the new start no tritonserver runs for a moment (pid 0).
        wait_for(lambda: pid_of(var, "tritonserver") not in (hung, 0), 45, "a new tritonserver")
    finally:
        if hung in [int(p.split(":")[0]) for p in processes_referencing(var)]:
            os.kill(hung, signal.SIGKILL)
    wait_for(lambda: health.probe(plan.components["triton"]) == health.SERVING, 60, "triton SERVING again")
    row = status_row(var, "triton")
    assert row[6] == "1" and row[1] == plan.address("triton"), row
    log = (var / "log" / "watchdog.log").read_text()
    assert f"restarting triton (pid {hung}): 2 failed probes in a row" in log, log


def test_up_right_after_down_on_pinned_ports_works_at_once(var: Path) -> None:
    port = _free_port()
    pins = {"FRAUD_NATS_PORT": str(port)}
    assert fraudctl(var, "up", "--only", "nats", env=pins).returncode == 0
    assert fraudctl(var, "down").returncode == 0
    _leave_time_wait(port)
    with socket.socket() as plain, pytest.raises(OSError) as refused:
        plain.bind(("127.0.0.1", port))  # without SO_REUSEADDR, TIME_WAIT holds the port (the old pre-check)
    assert refused.value.errno == errno.EADDRINUSE

    again = fraudctl(var, "up", "--only", "nats", env=pins)
    assert again.returncode == 0, again.stderr
    assert status_row(var, "nats")[1] == f"127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _leave_time_wait(port: int) -> None:
    """Leaves a TIME_WAIT connection on ``port``: the side that closes first waits, here the listening one."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()
        time.sleep(0.1)
        client.close()
