"""The RecordAuditRun request the audit CLIs build passes its own proto rules however the CLI was started."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import protovalidate
import pytest

from fraudctl.audit_cli import record_request


@pytest.mark.parametrize(
    "path, command",
    [
        ("fraudctl audit verify", "audit verify"),
        ("python -m fraudctl audit verify", "audit verify"),  # how `make resilience` runs it
        ("/opt/venv/bin/fraudctl audit replay", "audit replay"),
        ("root audit timeline", "audit timeline"),  # a test runner's program name
    ],
)
def test_the_command_is_taken_from_audit_on(path: str, command: str) -> None:
    ctx = SimpleNamespace(command_path=path, params={"strict": True, "actor": "ignored", "var_dir": "var"})
    request = record_request(ctx, "resilience", datetime.now(UTC), 0, "verified 3 events")  # type: ignore[arg-type]
    assert request.command == command
    assert list(request.arguments) == ["strict=True", "var_dir=var"]
    protovalidate.validate(request)  # raises on any broken rule
