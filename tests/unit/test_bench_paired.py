"""bench-ab's per-process CPU: how a process of the platform is named in its table."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.paired import process_label
from fraudctl import processes


@contextmanager
def running(argv: list[str]) -> Iterator[int]:
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5.0
        while not processes.argv(child.pid) and time.monotonic() < deadline:  # /proc shows it a moment after exec
            time.sleep(0.01)
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_a_python_module_is_named_by_its_last_part_and_a_binary_by_its_file_name() -> None:
    with running([sys.executable, "-m", "asyncio"]) as pid:  # waits on stdin, like a service waits on requests
        assert process_label(pid) == "asyncio"
    with running(["sleep", "30"]) as pid:
        assert process_label(pid) == "sleep"


def test_an_option_named_m_of_a_binary_is_not_a_module() -> None:
    with running(["cat", "--", "-", "-m", "8222"]) as pid:  # reads stdin first; nats-server's -m is its monitor port
        assert process_label(pid) == "cat"
