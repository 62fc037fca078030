"""`fraudctl demo` as a user runs it: separate processes under supervisord, then a PAN scan of var/.

Every call is made as a development principal (model-owner, approver and approver-2, scorer, labeler, the
auditor): a step calling with the wrong role, or without a certificate, fails the demo.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraudml.datagen import synthetic_pan
from services.governance.notary.service import audited_streams

pytestmark = pytest.mark.e2e
CUSTOMERS = 60


def test_demo_prints_the_table_leaves_no_process_and_no_pan_on_disk(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    args = ["--var-dir", str(var_dir), "--transactions", "400", "--customers", str(CUSTOMERS), "--days", "28"]
    env = {**os.environ, "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-m", "fraudctl", "demo", *args], capture_output=True, text=True, timeout=400, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "decisions APPROVE" in out and "latency p99 (ms)" in out and "scoring path TRITON" in out
    predictions = re.search(r"events in PREDICTIONS\s*│\s*([\d,]+)", out)
    assert predictions is not None and int(predictions.group(1).replace(",", "")) == 400
    assert "Traceback" not in done.stderr
    streams = len(audited_streams())  # ACCESS (the role grants) too
    assert re.search(rf"verified \d+ events in \d+ checkpoints over {streams} stream", out.replace("\n", " ")), out
    assert (var_dir / "credentials" / "scorer" / "cert.pem").is_file() and (var_dir / "pki" / "ca.pem").is_file()

    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _mentions(p, str(var_dir))]
    assert leftovers == []

    pans = {synthetic_pan(customer) for customer in range(CUSTOMERS + 1)}
    needles = [p.encode() for p in pans] + [p.encode("utf-16-le") for p in pans]
    files = [p for p in var_dir.rglob("*") if p.is_file()]
    assert any("jetstream" in str(p) or "nats" in str(p) for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"a PAN was written to {path}"


def _mentions(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes() or text.encode() in (proc / "environ").read_bytes()
    except OSError:
        return False
