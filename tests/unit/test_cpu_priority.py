"""lower_cpu_priority: an off-hot-path service lowers its nice value and, as a session leader, its autogroup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import os, sys
from pathlib import Path
from fraudshared.service import lower_cpu_priority
applied = lower_cpu_priority()
try:
    group = Path("/proc/self/autogroup").read_text().split()[-1]
except (OSError, IndexError):  # the root autogroup's file reads empty
    group = "-"
print(applied, os.nice(0), group)
"""


def _autogroup_nice() -> str:
    """Our autogroup's nice value; "-" in the root group, whose file reads empty (seen in CI)."""
    try:
        return Path("/proc/self/autogroup").read_text().split()[-1]
    except (OSError, IndexError):
        return "-"


def _probe(env: dict[str, str], new_session: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True, check=True,
        start_new_session=new_session,
    )  # fmt: skip
    return done.stdout.split()


def test_default_changes_nothing() -> None:
    applied, nice, _ = _probe({"FRAUD_CPU_NICENESS": "0"}, new_session=True)
    assert (applied, nice) == ("0", str(os.nice(0)))


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="kernel without autogroup scheduling")
def test_session_leader_lowers_its_autogroup_and_others_only_their_nice() -> None:
    assert _probe({"FRAUD_CPU_NICENESS": "25"}, new_session=True) == ["19", "19", "19"]  # capped at 19
    mine = _autogroup_nice()
    # Not a session leader: its autogroup is ours (the test runner's), which it must leave alone.
    assert _probe({"FRAUD_CPU_NICENESS": "19"}, new_session=False) == ["19", "19", mine]
