"""fraudctl.processes.cpu_time: a process's CPU seconds from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fraudctl.processes import cpu_time


def test_cpu_time_grows_with_work_and_is_none_once_the_process_is_gone() -> None:
    before = cpu_time(os.getpid())
    assert before is not None
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = cpu_time(os.getpid())
    assert after is not None and after - before >= 0.1
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_time(child.pid) is None
