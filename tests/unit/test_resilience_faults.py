"""Finding a component's process from a process table (a fake /proc tree), whatever supervisor started it."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.faults import command_matches, component_pids, runs_as
from resilience.report import targets

VAR = Path("/srv/fraud/var")
INGEST = ["/work/main/.venv/bin/python", "-m", "services.ingest"]
NATS = ["/venv/bin/nats-server", "-a", "127.0.0.1", "-p", "4222", "-js"]


def process(
    proc: Path, pid: int, argv: list[str], *, parent: int = 1, var: Path | None = VAR, state: str = "S"
) -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "stat").write_text(f"{pid} (some name) {state} {parent} 0 0 0\n")
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    env = ["PATH=/usr/bin", *([f"FRAUD_RUNTIME_DIR={var}"] if var else []), "HOME=/root"]
    (entry / "environ").write_bytes(b"\0".join(e.encode() for e in env) + b"\0")


@pytest.mark.parametrize(
    ("argv", "command", "expected"),
    [
        (INGEST, INGEST, True),
        (["/usr/bin/python", "-m", "services.ingest"], INGEST, True),  # a supervisor resolved the interpreter
        (["/usr/bin/env", "GOMAXPROCS=1", *NATS], NATS, True),  # a wrapper that did not exec
        (["/work/main/.venv/bin/python", "-m", "services.ingest_replay"], INGEST, False),
        (["/work/main/.venv/bin/python", "-m", "services.features"], INGEST, False),
        (["/bin/sh", "-c", " ".join(INGEST)], INGEST, False),  # the shell's one string is not the command
        (NATS[:-1], NATS, False),
        ([], INGEST, False),
    ],
)
def test_command_matches(argv: list[str], command: list[str], expected: bool) -> None:
    assert command_matches(argv, command) is expected


def test_finds_only_our_runtime_s_top_most_live_process_of_the_component(tmp_path: Path) -> None:
    process(tmp_path, 10, ["supervisord", "-c", "x.conf"])
    process(tmp_path, 20, INGEST, parent=10)
    process(tmp_path, 21, INGEST, parent=20)  # a child with the same command line dies with its parent
    process(tmp_path, 30, INGEST, var=Path("/other/var"))  # another platform's ingest
    process(tmp_path, 31, INGEST, var=None)  # not a runtime process at all
    process(tmp_path, 32, INGEST, state="Z")  # a zombie is already dead
    process(tmp_path, 40, ["/work/main/.venv/bin/python", "-m", "services.scoring"], parent=10)
    (tmp_path / "self").mkdir()  # non-pid entries are skipped
    assert component_pids(VAR, INGEST, proc=tmp_path) == [20]
    assert component_pids(VAR, NATS, proc=tmp_path) == []


def test_a_process_that_vanishes_mid_scan_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "99").mkdir()  # its files are gone: reads fail
    process(tmp_path, 20, INGEST)
    assert component_pids(VAR, INGEST, proc=tmp_path) == [20]


SUMMARY = {
    "lost": 0,
    "duplicated": 0,
    "recovery_s": 1.2,
    "recovery_path": "LOCAL_ONNX",
    "unflagged_fallbacks_after_kill": 0,
    "triton_recovery_s": 12.0,
}


def test_targets_of_a_fault_that_met_them_all() -> None:
    met = targets("triton", SUMMARY, {"manual_restart": False, "champion_back_s": 0.1})
    assert all(met.values()) and len(met) == 6
    assert len(targets("ingest", SUMMARY, {"manual_restart": False, "champion_back_s": 0.1})) == 4


def test_targets_missed() -> None:
    bad = {**SUMMARY, "lost": 1, "recovery_s": 5.5, "unflagged_fallbacks_after_kill": 3, "triton_recovery_s": None}
    met = targets("triton", bad, {"manual_restart": True, "champion_back_s": None})
    assert not any(v for k, v in met.items() if k != "0 duplicated") and met["0 duplicated"]
    safe_mode = {**SUMMARY, "recovery_path": "SAFE_MODE_RULES"}
    assert not targets("triton", safe_mode, {"manual_restart": False, "champion_back_s": 1})[
        "local rung, flagged degraded"
    ]
    never = {**SUMMARY, "recovery_s": None}
    assert not targets("scoring", never, {"manual_restart": False, "champion_back_s": 1})["decisions again <= 5 s"]


def test_a_launched_component_is_found_as_what_its_launcher_exec_d(tmp_path: Path) -> None:
    """Triton starts through `python -m fraudctl.triton_launch KEY -- tritonserver ...`, which execs Triton with
    the admin-key flags appended: the process then runs the part after `--`, not the plan's command."""
    triton = ["/venv/tritonserver", "--model-repository=/var/models", "--grpc-port=8001"]
    plan_command = ["/venv/bin/python", "-m", "fraudctl.triton_launch", "/var/pki/triton-admin-key", "--", *triton]
    assert runs_as(plan_command) == triton
    assert runs_as(INGEST) == INGEST
    process(tmp_path, 50, [*triton, "--grpc-restricted-protocol=model-repository:k=v"])
    assert component_pids(VAR, runs_as(plan_command), proc=tmp_path) == [50]
    assert component_pids(VAR, plan_command, proc=tmp_path) == []  # what the run before this fix did
