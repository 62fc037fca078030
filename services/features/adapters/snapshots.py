"""Feature-state snapshots as files (atomic replace); in a cluster, point FRAUD_VAR_DIR at a volume."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fraudshared.telemetry import get_logger

log = get_logger(__name__)


class FileSnapshotStore:
    """One JSON file per partition set."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable feature snapshot %s: %s", self.path, exc)
            return None
        return data

    def save(self, snapshot: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(snapshot, out, separators=(",", ":"))
        os.replace(tmp, self.path)
