"""Feature-state snapshots as files (atomic replace); in a cluster, point FRAUD_VAR_DIR at a volume.

The format is `marshal` (builtin types only, no code: unlike pickle, loading cannot run anything), about
six times faster to write than JSON for the same state, which matters because serializing holds the GIL
of the process that serves features. marshal's format belongs to the Python version, so each file names
the version that wrote it; a file from another version (or an unreadable one) is ignored and the state is
rebuilt by replaying the stream.
"""

from __future__ import annotations

import marshal
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from fraudshared.telemetry import get_logger

log = get_logger(__name__)
FORMAT = f"fraud-features-snapshot/marshal/py{sys.version_info[0]}.{sys.version_info[1]}"


class FileSnapshotStore:
    """One snapshot file per partition set."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            data = marshal.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, TypeError) as exc:
            log.warning("ignoring unreadable feature snapshot %s: %s", self.path, exc)
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            log.warning("ignoring feature snapshot %s: not %s", self.path, FORMAT)
            return None
        return data

    def save(self, snapshot: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps({**snapshot, "format": FORMAT}))
        os.replace(tmp, self.path)
