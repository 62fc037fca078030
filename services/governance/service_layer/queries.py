"""Questions the registry answers: list, serving, lineage, champion at a time, artifacts, who decided a transaction.

Every read first catches the projection up with the MODELS stream, so an answer includes what other
governance instances appended.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from services.governance.domain.errors import UnknownDecision, UnknownVersion
from services.governance.domain.views import Lineage, RecordedDecision, VersionView
from services.governance.service_layer.handlers import Governance
from services.governance.service_layer.projection import catch_up


async def list_models(gov: Governance, model_name: str = "") -> list[VersionView]:
    """Registered versions (of one model when ``model_name`` is set), oldest first."""
    await catch_up(gov)
    return await asyncio.to_thread(gov.registry.list_versions, model_name or None)


async def get_serving_models(gov: Governance) -> list[VersionView]:
    """Deployed versions with their roles: what scoring should use now."""
    await catch_up(gov)
    return await asyncio.to_thread(gov.registry.serving)


async def get_model(gov: Governance, model_name: str, version: str) -> Lineage:
    """One version's full lineage: data, code, params, metrics, approvals, deployments, promotions, rollbacks.

    Raises:
        UnknownVersion: If the registry has no such version.
    """
    await catch_up(gov)
    found = await asyncio.to_thread(gov.registry.lineage, model_name, version)
    if found is None:
        raise UnknownVersion(f"model {model_name} has no version {version}")
    return found


async def live_model(gov: Governance, model_name: str, moment: datetime) -> VersionView | None:
    """The version that was champion of ``model_name`` at ``moment`` (None if none was yet).

    Raises:
        UnknownVersion: If the model has no registered version at all.
    """
    await catch_up(gov)
    if not await asyncio.to_thread(gov.registry.list_versions, model_name):
        raise UnknownVersion(f"model {model_name} is not registered")
    return await asyncio.to_thread(gov.registry.champion_at, model_name, moment)


async def get_artifact(gov: Governance, sha256: str) -> bytes:
    """A stored artifact's bytes (ONNX model or explainer), verified against its sha256.

    Raises:
        UnknownArtifact: If nothing is stored under ``sha256``.
        ArtifactDamaged: If the stored bytes no longer match.
    """
    return await asyncio.to_thread(gov.artifacts.get, sha256)


async def decided_by(gov: Governance, transaction_id: str) -> RecordedDecision:
    """The transaction's recorded decision (PredictionMade) joined with the registry's view of its model.

    Raises:
        UnknownDecision: If no decision is recorded for the transaction.
    """
    if gov.decisions is None:
        raise UnknownDecision("this governance instance has no decision log")
    found = await gov.decisions.prediction(transaction_id)
    if found is None:
        raise UnknownDecision(f"no decision is recorded for transaction {transaction_id}")
    prediction, seq = found
    model = None
    if prediction.model.name:
        await catch_up(gov)
        model = await asyncio.to_thread(gov.registry.get, prediction.model.name, prediction.model.version)
    return RecordedDecision(prediction=prediction, stream_seq=seq, model=model)
