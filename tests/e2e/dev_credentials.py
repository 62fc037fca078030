"""The development credentials under <var>/credentials/<name>/, as `fraudctl up` lays them out.

fraudctl's commands and helpers (`fraudctl.demo.deploy`, `--as NAME`) find a principal's certificate there;
a test platform started in process has none, so the tests put the session CA's user:dev-<name> certificates
in the same place (`tests.fixtures.identity` issues them; `running_platform` grants their roles).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.fixtures.identity import session_pki

NAMES = (
    "scorer",
    "labeler",
    "analyst",
    "model-owner",
    "approver",
    "approver-2",
    "auditor",
    "privacy-officer",
    "admin",
)


def install(var_dir: Path) -> Path:
    """Copies user:dev-<name>'s ca.pem, cert.pem, key.pem (0600) to <var_dir>/credentials/<name>/ for each name.

    Returns:
        The credentials directory.
    """
    root = var_dir / "credentials"
    for name in NAMES:
        files = session_pki().files(f"user:dev-{name}")
        target = root / name
        target.mkdir(parents=True, exist_ok=True)
        for source in (files.ca, files.cert, files.key):
            shutil.copyfile(source, target / source.name)
        (target / files.key.name).chmod(0o600)
    return root
