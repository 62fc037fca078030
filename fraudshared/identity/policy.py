"""Who may call what: the roles, and the access table from full gRPC method name to the roles allowed.

The table is written per service and method name and checked against the generated descriptors at import:
a renamed or removed RPC fails loudly here instead of silently falling out of the table, and a unit test
asserts every RPC of every ``fraud.*`` service is in it. A method not in the table is denied.
docs/security.md renders the same table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from fraud.access.v1 import access_service_pb2
from fraud.audit.v1 import audit_service_pb2
from fraud.features.v1 import feature_service_pb2
from fraud.governance.v1 import governance_service_pb2
from fraud.ingest.v1 import ingest_service_pb2
from fraud.monitor.v1 import monitor_service_pb2
from fraud.scoring.v1 import scoring_service_pb2

ROLES = ("scorer", "labeler", "analyst", "model-owner", "approver", "auditor", "privacy-officer", "admin")
# Implicit for the platform's own services (PLATFORM_SERVICES): only the platform's CA issues service certificates.
SERVICE_ROLE = "service"
# The principals that hold SERVICE_ROLE: the platform's own services. Other service principals the CA issues
# (service:bootstrap, service:nats) hold only what is granted to them.
PLATFORM_SERVICES = frozenset({"ingest", "features", "scoring", "governance", "monitor"})
# No principal needed (health probes); still behind TLS on the main port.
OPEN = frozenset({"*open*"})
# Any authenticated principal, whatever its roles (reflection).
ANY_PRINCIPAL = frozenset({"*any*"})

SERVICE_FILES: tuple[FileDescriptor, ...] = (
    ingest_service_pb2.DESCRIPTOR,
    feature_service_pb2.DESCRIPTOR,
    scoring_service_pb2.DESCRIPTOR,
    governance_service_pb2.DESCRIPTOR,
    monitor_service_pb2.DESCRIPTOR,
    access_service_pb2.DESCRIPTOR,
    audit_service_pb2.DESCRIPTOR,
)

_READ_MODELS = frozenset({"model-owner", "approver", "analyst", "auditor", "admin", SERVICE_ROLE})
_MODEL_OWNER = frozenset({"model-owner"})

# service name -> method name -> roles allowed.
_TABLE: Mapping[str, Mapping[str, frozenset[str]]] = {
    "fraud.ingest.v1.IngestService": {
        "ScoreTransaction": frozenset({"scorer"}),
        "ReportLabel": frozenset({"labeler", "analyst"}),
        "ForgetCardholder": frozenset({"privacy-officer"}),
    },
    "fraud.features.v1.FeatureService": {"ComputeFeatures": frozenset({SERVICE_ROLE})},
    "fraud.scoring.v1.ScoringService": {"ScoreFeatures": frozenset({SERVICE_ROLE})},
    "fraud.governance.v1.GovernanceService": {
        "RegisterModel": _MODEL_OWNER,
        "DeployModel": _MODEL_OWNER,
        "PromoteModel": _MODEL_OWNER,
        "RollbackModel": _MODEL_OWNER,
        "ApproveModel": frozenset({"approver"}),
        "ListModels": _READ_MODELS,
        "GetModel": _READ_MODELS,
        "GetLiveModel": _READ_MODELS,
        "GetServingModels": _READ_MODELS,
        "GetDecisionModel": _READ_MODELS,
        "GetModelArtifact": frozenset({"model-owner", "auditor", SERVICE_ROLE}),
    },
    "fraud.monitor.v1.MonitorService": {"GetMonitorStatus": frozenset({"analyst", "model-owner", "auditor", "admin"})},
    "fraud.access.v1.AccessService": {
        "GrantRole": frozenset({"admin"}),
        "RevokeRole": frozenset({"admin"}),
        "ListGrants": frozenset({"admin", "auditor"}),
    },
    "fraud.audit.v1.AuditService": {"RecordAuditRun": frozenset({"auditor"})},
    "grpc.health.v1.Health": {"Check": OPEN, "Watch": OPEN},
    "grpc.reflection.v1alpha.ServerReflection": {"ServerReflectionInfo": ANY_PRINCIPAL},
    "grpc.reflection.v1.ServerReflection": {"ServerReflectionInfo": ANY_PRINCIPAL},
}


def fraud_services(files: Iterable[FileDescriptor] = SERVICE_FILES) -> dict[str, ServiceDescriptor]:
    """Every ``fraud.*`` service declared in ``files``, by full name."""
    return {s.full_name: s for f in files for s in f.services_by_name.values() if s.full_name.startswith("fraud.")}


def _build(table: Mapping[str, Mapping[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    services = fraud_services()
    access: dict[str, frozenset[str]] = {}
    for service_name, methods in table.items():
        descriptor = services.get(service_name)
        if service_name.startswith("fraud.") and descriptor is None:
            raise RuntimeError(f"access table names {service_name}, which no generated descriptor declares")
        for method, roles in methods.items():
            if descriptor is not None and method not in descriptor.methods_by_name:
                raise RuntimeError(f"access table names {service_name}/{method}, which the service does not declare")
            unknown = roles - {*ROLES, SERVICE_ROLE} - OPEN - ANY_PRINCIPAL
            if unknown:
                raise RuntimeError(f"access table: {service_name}/{method} names unknown roles {sorted(unknown)}")
            access[f"/{service_name}/{method}"] = roles
    return access


ACCESS: Mapping[str, frozenset[str]] = MappingProxyType(_build(_TABLE))


def allowed(method: str, roles: Iterable[str], access: Mapping[str, frozenset[str]] = ACCESS) -> bool:
    """True when a caller holding ``roles`` may call the full method name ``method`` (unknown: denied)."""
    needed = access.get(method)
    if needed is None:
        return False
    if needed is OPEN or needed is ANY_PRINCIPAL:
        return True
    return not needed.isdisjoint(roles)


def roles_text(roles: frozenset[str]) -> str:
    """A role set as docs and error messages show it, in ROLES order."""
    order = {role: i for i, role in enumerate((*ROLES, SERVICE_ROLE))}
    return ", ".join(sorted(roles, key=lambda r: order.get(r, len(order))))


def access_table_markdown(access: Mapping[str, frozenset[str]] = ACCESS) -> str:
    """The access table as docs/security.md shows it (a test keeps the two equal)."""
    lines = ["| Method | Who may call it |", "| --- | --- |"]
    for method in sorted(access):
        roles = access[method]
        who = "anyone (no principal needed)" if roles is OPEN else "any authenticated principal"
        if roles not in (OPEN, ANY_PRINCIPAL):
            who = roles_text(roles)
        lines.append(f"| `{method}` | {who} |")
    return "\n".join(lines)
