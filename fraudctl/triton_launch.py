"""``python -m fraudctl.triton_launch KEY_FILE -- TRITONSERVER_ARGV...``: exec Triton with its admin key.

Triton takes the key that guards its model-management APIs only as a command-line flag
(`fraudshared.triton_admin.restricted_api_flags`). supervisord runs this launcher instead, so the key stays
out of the run files anyone may read (``plan.json``, ``supervisord.conf``): it reads the key file (0600) and
replaces itself with tritonserver (``execv``: the pid supervisord watches is Triton's, with no wrapper left).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fraudshared.config import ConfigError
from fraudshared.triton_admin import read_admin_key_file, restricted_api_flags


def main(argv: list[str]) -> int:
    """Execs ``argv[2:]`` plus the restricted-API flags; returns 2 (and says why) if it cannot."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m fraudctl.triton_launch KEY_FILE -- TRITONSERVER_ARGV...", file=sys.stderr)
        return 2
    key_file, command = argv[0], argv[2:]
    try:
        flags = restricted_api_flags(read_admin_key_file(Path(key_file)))
    except (ConfigError, ValueError) as exc:
        print(f"triton_launch: {exc}", file=sys.stderr)
        return 2
    os.execv(command[0], [*command, *flags])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
