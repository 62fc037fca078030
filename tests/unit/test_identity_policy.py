"""The access table covers every RPC the platform declares, and `allowed` reads it."""

from __future__ import annotations

import importlib
from pathlib import Path

import fraud
from fraudshared.identity.policy import (
    ACCESS,
    ANY_PRINCIPAL,
    OPEN,
    ROLES,
    SERVICE_ROLE,
    access_table_markdown,
    allowed,
    fraud_services,
)


def _all_generated_files() -> list:
    """Every generated *_pb2 module under gen/python/fraud, imported (so a new service file is seen too)."""
    root = Path(next(iter(fraud.__path__)))
    modules = []
    for path in sorted(root.rglob("*_pb2.py")):
        name = ".".join(("fraud", *path.relative_to(root).with_suffix("").parts))
        modules.append(importlib.import_module(name).DESCRIPTOR)
    return modules


def test_every_rpc_of_every_fraud_service_is_in_the_table() -> None:
    services = fraud_services(_all_generated_files())
    assert {"fraud.ingest.v1.IngestService", "fraud.access.v1.AccessService"} <= set(services)
    missing = [
        f"/{service.full_name}/{method.name}"
        for service in services.values()
        for method in service.methods
        if f"/{service.full_name}/{method.name}" not in ACCESS
    ]
    assert missing == []


def test_the_table_names_known_roles_only() -> None:
    for method, roles in ACCESS.items():
        assert roles in (OPEN, ANY_PRINCIPAL) or roles <= {*ROLES, SERVICE_ROLE}, method


def test_allowed() -> None:
    score = "/fraud.ingest.v1.IngestService/ScoreTransaction"
    assert allowed(score, {"scorer"})
    assert not allowed(score, {"analyst", "admin"})
    assert allowed("/fraud.features.v1.FeatureService/ComputeFeatures", {SERVICE_ROLE})
    assert not allowed("/fraud.features.v1.FeatureService/ComputeFeatures", {"admin"})
    assert allowed("/grpc.health.v1.Health/Check", set())
    assert allowed("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", set())
    assert not allowed("/fraud.ingest.v1.IngestService/NoSuchMethod", set(ROLES))
    assert ACCESS["/fraud.governance.v1.GovernanceService/ApproveModel"] == {"approver"}
    assert ACCESS["/fraud.access.v1.AccessService/ListGrants"] == {"admin", "auditor"}


def test_docs_security_md_shows_the_table_exactly() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    start = text.index("-->\n", text.index("<!-- access-table")) + len("-->\n")
    end = text.index("<!-- end access-table -->")
    assert text[start:end].strip() == access_table_markdown()
