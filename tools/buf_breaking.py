"""Run `buf breaking` (FILE rules) of the current proto image against the previous commit's protos.

The baseline is HEAD when proto/ has uncommitted changes (what you are about to commit is checked against
what landed), else HEAD~1 (CI on a clean clone checks the commit under test against its parent). A
baseline with no proto/ directory, or no git history at all, is reported and skipped, not failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


def baseline_revision() -> str | None:
    if git("rev-parse", "--verify", "-q", "HEAD").returncode != 0:
        return None
    dirty = git("status", "--porcelain", "--", "proto").stdout.strip()
    if dirty:
        return "HEAD"
    return "HEAD~1" if git("rev-parse", "--verify", "-q", "HEAD~1").returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", type=Path, required=True, help="image of the current protos")
    opts = parser.parse_args()
    rev = baseline_revision()
    if rev is None:
        print("buf breaking: no previous commit to compare with; skipped")
        return 0
    archive = git("archive", "--format=tar", rev, "proto")
    if archive.returncode != 0:
        print(f"buf breaking: {rev} has no proto/ directory; skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        against = Path(tmp) / "against.binpb"
        gen = [sys.executable, str(ROOT / "tools/protogen.py"), "--proto-dir", f"{tmp}/proto", "--image", str(against)]
        subprocess.run(gen, check=True, capture_output=True)
        buf = Path(sys.executable).parent / "buf"
        result = subprocess.run([str(buf), "breaking", str(opts.image), "--against", str(against)], check=False)
    if result.returncode == 0:
        print(f"buf breaking: compatible with {rev}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
