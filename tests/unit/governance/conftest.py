"""The governance use cases under test, wired to in-memory fakes; registry on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine
from services.governance.service_layer import handlers
from tests.unit.governance.governance_fakes import (
    Clock,
    FakeArtifacts,
    FakeDecisionLog,
    FakeEventStore,
    FakeModelServer,
    fake_validate,
)


@pytest.fixture
def gov(tmp_path: Path) -> handlers.Governance:
    registry = RegistryProjection(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    registry.create()
    return handlers.Governance(
        FakeEventStore(),
        registry,
        FakeArtifacts(),
        FakeModelServer(),
        fake_validate,
        decisions=FakeDecisionLog(),
        clock=Clock(),
    )
