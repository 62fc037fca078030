"""Composition root of the governance service: configuration, adapters, use cases and the gRPC servicer.

The shared lifecycle (`fraudshared.service.run_service`) owns the NATS connection, ensures the streams,
serves gRPC (64 MiB messages, for ONNX uploads) with health, reflection, validation, tracing and metrics, and
shuts down on SIGTERM/SIGINT; this module only wires what is specific to governance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fraud.access.v1 import access_service_pb2_grpc as access_grpc
from fraud.audit.v1 import audit_service_pb2_grpc as audit_grpc
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudshared.config import ConfigError, EnvConfig, env_field, env_float
from fraudshared.grpc_server import ServicerSpec
from fraudshared.identity.policy import ROLES
from fraudshared.service import ServiceContext
from fraudshared.telemetry import get_logger
from services.governance.adapters.artifact_checks import validate_artifacts
from services.governance.adapters.artifacts import ArtifactStore
from services.governance.adapters.audit_run_log import JetStreamAuditRunLog
from services.governance.adapters.decision_log import JetStreamDecisionLog
from services.governance.adapters.event_log import JetStreamModelEvents
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import default_database_url, make_engine
from services.governance.adapters.role_log import JetStreamRoleLog
from services.governance.adapters.triton_deployer import BACKENDS, TritonDeployer
from services.governance.entrypoints.access_servicer import SERVICE_NAME as ACCESS_SERVICE_NAME
from services.governance.entrypoints.access_servicer import AccessServicer
from services.governance.entrypoints.audit_servicer import SERVICE_NAME as AUDIT_SERVICE_NAME
from services.governance.entrypoints.audit_servicer import AuditServicer
from services.governance.entrypoints.grpc_servicer import SERVICE_NAME, GovernanceServicer
from services.governance.notary.bootstrap import start_notary
from services.governance.service_layer import access, handlers, projection

SERVICE = "governance"
log = get_logger(__name__)


@dataclass(frozen=True)
class GovernanceConfig(EnvConfig):
    """Governance settings; empty paths and URLs default to places under ``FRAUD_VAR_DIR``.

    Attributes:
        triton_grpc_url: Triton's gRPC address (``FRAUD_TRITON_GRPC_URL``).
        triton_model_repo: Triton's model repository directory (``FRAUD_TRITON_MODEL_REPO``).
        triton_backend: ``python`` (the pip tritonserver) or ``onnxruntime_onnx`` (``FRAUD_TRITON_BACKEND``).
        database_url: Registry database (``FRAUD_GOVERNANCE_DATABASE_URL``), SQLite file by default.
        database_schema: PostgreSQL schema of the registry tables, empty = the default one
            (``FRAUD_GOVERNANCE_DATABASE_SCHEMA``).
        artifact_dir: Content-addressed artifact store (``FRAUD_ARTIFACT_DIR``).
    """

    triton_grpc_url: str = env_field("FRAUD_TRITON_GRPC_URL", "127.0.0.1:8001")
    triton_model_repo: str = env_field("FRAUD_TRITON_MODEL_REPO", "")
    triton_backend: str = env_field("FRAUD_TRITON_BACKEND", "python")
    database_url: str = env_field("FRAUD_GOVERNANCE_DATABASE_URL", "")
    database_schema: str = env_field("FRAUD_GOVERNANCE_DATABASE_SCHEMA", "")
    artifact_dir: str = env_field("FRAUD_ARTIFACT_DIR", "")

    def resolved(self, var_dir: Path) -> GovernanceConfig:
        """The same settings with defaults under ``var_dir`` filled in.

        Raises:
            ConfigError: If the backend is unknown or the database URL is not SQLite or PostgreSQL.
        """
        if self.triton_backend not in BACKENDS:
            raise ConfigError(f"FRAUD_TRITON_BACKEND must be one of {', '.join(BACKENDS)}, got {self.triton_backend!r}")
        url = self.database_url or default_database_url(var_dir)
        if not url.startswith(("sqlite://", "postgresql")):
            raise ConfigError(f"FRAUD_GOVERNANCE_DATABASE_URL must be sqlite:/// or postgresql+psycopg://, got {url!r}")
        return GovernanceConfig(
            triton_grpc_url=self.triton_grpc_url,
            triton_model_repo=self.triton_model_repo or str(var_dir / "triton" / "models"),
            triton_backend=self.triton_backend,
            database_url=url,
            database_schema=self.database_schema,
            artifact_dir=self.artifact_dir or str(var_dir / "artifacts"),
        )


def build_governance(config: GovernanceConfig, ctx: ServiceContext) -> handlers.Governance:
    """Wires the adapters (config must be `GovernanceConfig.resolved`)."""
    engine = make_engine(config.database_url, schema=config.database_schema or None)
    ctx.on_shutdown.append(engine.dispose)
    registry = RegistryProjection(engine)
    registry.create()  # alembic upgrade head, then the position row
    deployer = TritonDeployer(config.triton_grpc_url, Path(config.triton_model_repo), backend=config.triton_backend)
    ctx.on_shutdown.append(deployer.close)
    return handlers.Governance(
        events=JetStreamModelEvents(ctx.store, ctx.js),
        registry=registry,
        artifacts=ArtifactStore(config.artifact_dir),
        model_server=deployer,
        validate_artifacts=validate_artifacts,
        decisions=JetStreamDecisionLog(ctx.js),
    )


async def _reconcile_forever(gov: handlers.Governance, every_s: float) -> None:
    """Self-healing: put serving versions back into a restarted Triton (it starts empty)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await handlers.reconcile_serving(gov)
        except Exception:  # e.g. NATS briefly unreachable: try again next round
            log.exception("reconciling the model server failed")


async def bootstrap(ctx: ServiceContext) -> Sequence[ServicerSpec]:
    """Builds the governance, access and audit servicers; the registry catches up with MODELS before serving.

    The access servicer appends grants to ACCESS and lists them from the fold the auth interceptor reads
    (``ctx.grants``, kept current by the shared lifecycle). The audit servicer records the audit CLIs' runs on
    AUDIT, which only governance may append to.
    """
    config = await asyncio.to_thread(lambda: GovernanceConfig.from_env().resolved(ctx.config.var_dir))
    gov = await asyncio.to_thread(build_governance, config, ctx)
    position = await projection.catch_up(gov)
    log.info(
        "governance registry at stream position %d (database %s, triton %s, repository %s)",
        position,
        config.database_url.split("@")[-1],
        config.triton_grpc_url,
        config.triton_model_repo,
    )
    await start_notary(ctx)  # audit checkpoints, in the background (FRAUD_NOTARY_EVERY_N / _EVERY_S)
    reconciler = asyncio.ensure_future(_reconcile_forever(gov, env_float("FRAUD_GOVERNANCE_RECONCILE_EVERY_S", 5.0)))
    ctx.on_shutdown.append(reconciler.cancel)
    access_use_cases = access.Access(JetStreamRoleLog(ctx.js), ctx.grants, ROLES)
    audit_runs = AuditServicer(JetStreamAuditRunLog(ctx.store))
    return [
        (pb_grpc.add_GovernanceServiceServicer_to_server, GovernanceServicer(gov), SERVICE_NAME),
        (access_grpc.add_AccessServiceServicer_to_server, AccessServicer(access_use_cases), ACCESS_SERVICE_NAME),
        (audit_grpc.add_AuditServiceServicer_to_server, audit_runs, AUDIT_SERVICE_NAME),
    ]
