"""GovernanceService over grpc.aio: requests become commands, domain errors become status codes.

The actor of every command (registrant, approver, deployer, promoter, roller-back) is the authenticated caller
(`actor.actor_id`), never a request field: four eyes compare principals.

Request field rules (patterns, lengths, required thresholds) are enforced before we get here by the shared
protovalidate interceptor; this layer maps what only the domain can judge.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC
from typing import NoReturn, TypeVar

import grpc
import grpc.aio
import nats.errors
import sqlalchemy.exc
from google.protobuf.json_format import ParseDict, ParseError

from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from services.governance.domain import errors
from services.governance.domain.commands import ApproveModel, DeployModel, PromoteModel, RegisterModel, RollbackModel
from services.governance.domain.events import ROLE_TO_PROTO, role_from_proto
from services.governance.domain.model import Stage
from services.governance.domain.views import LifecycleRecord, Lineage, RecordedDecision, VersionView
from services.governance.entrypoints.actor import actor_id
from services.governance.service_layer import handlers, queries

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GovernanceService"].full_name
# Most specific first: InvalidArtifact is an InvalidCommand.
STATUS_OF: tuple[tuple[type[errors.GovernanceError], grpc.StatusCode], ...] = (
    (errors.UnknownVersion, grpc.StatusCode.NOT_FOUND),
    (errors.UnknownArtifact, grpc.StatusCode.NOT_FOUND),
    (errors.UnknownDecision, grpc.StatusCode.NOT_FOUND),
    (errors.DuplicateVersion, grpc.StatusCode.ALREADY_EXISTS),
    (errors.InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.InvalidCommand, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ConcurrentChange, grpc.StatusCode.ABORTED),
    (errors.ServingUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeploymentFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ArtifactDamaged, grpc.StatusCode.DATA_LOSS),
)
STAGE_TO_PROTO = {
    Stage.REGISTERED: pb.MODEL_STAGE_REGISTERED,
    Stage.VALIDATED: pb.MODEL_STAGE_VALIDATED,
    Stage.APPROVED: pb.MODEL_STAGE_APPROVED,
    Stage.DEPLOYED: pb.MODEL_STAGE_DEPLOYED,
    Stage.RETIRED: pb.MODEL_STAGE_RETIRED,
}


def status_of(exc: errors.GovernanceError) -> grpc.StatusCode:
    """The gRPC status code for a governance error."""
    return next((code for kind, code in STATUS_OF if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)


def to_proto(view: VersionView) -> pb.ModelVersion:
    """The wire form of a registry view."""
    message = pb.ModelVersion(
        model_name=view.model_name,
        version=view.version,
        stage=STAGE_TO_PROTO[view.stage],
        role=ROLE_TO_PROTO[view.role] if view.role else 0,
        artifact_sha256=view.artifact_sha256,
        dataset_sha256=view.dataset_sha256,
        feature_set_version=view.feature_set_version,
        metrics=dict(view.metrics),
        approvers=list(view.approvers),
        triton_model_name=view.triton_model_name,
        feature_names=list(view.feature_names),
        code_revision=view.code_revision,
        params=dict(view.params),
        registered_by=view.registered_by,
        canary_percent=view.canary_percent,
        explainer_artifact_sha256=view.explainer_artifact_sha256,
        validation_checks=dict(view.validation_checks),
        data_split=dict(view.data_split),
    )
    message.thresholds.review, message.thresholds.decline = view.review_threshold, view.decline_threshold
    message.registered_at.FromDatetime(view.registered_at)
    return message


def lineage_to_proto(lineage: Lineage) -> pb.GetModelResponse:
    """GetModel's answer: the version, its approvals, its lifecycle history and its reference profile."""
    response = pb.GetModelResponse(model=to_proto(lineage.version))
    for approval in lineage.approvals:
        record = response.approvals.add(approver=approval.approver, comment=approval.comment)
        record.approved_at.FromDatetime(approval.approved_at)
    for entry in lineage.history:
        response.history.append(_record(entry))
    if lineage.reference_profile:
        try:
            ParseDict(lineage.reference_profile, response.reference_profile)
        except ParseError as exc:  # stored by an older projection: the stream has the original, rebuild
            log.warning("reference profile of %s unreadable: %s", lineage.version.version, exc)
    return response


def _record(entry: LifecycleRecord) -> pb.LifecycleRecord:
    record = pb.LifecycleRecord(
        kind=entry.kind,
        role=ROLE_TO_PROTO[entry.role] if entry.role else 0,
        canary_percent=entry.canary_percent,
        actor=entry.actor,
        reason=entry.reason,
        other_version=entry.other_version,
        stream_seq=entry.stream_seq,
    )
    record.at.FromDatetime(entry.at)
    return record


def decision_to_proto(found: RecordedDecision) -> pb.GetDecisionModelResponse:
    """GetDecisionModel's answer: the recorded PredictionMade joined with the registry's view of its model."""
    prediction = found.prediction
    response = pb.GetDecisionModelResponse(
        model_ref=prediction.model,
        role=prediction.role,
        decision=prediction.decision,
        score=prediction.score,
        scoring_path=prediction.scoring_path,
        degraded=prediction.degraded,
        event_time=prediction.event_time,
        decided_at=prediction.decided_at,
        thresholds=prediction.thresholds,
        feature_set_version=prediction.feature_set_version,
        prediction_seq=found.stream_seq,
    )
    if found.model is not None:
        response.model.CopyFrom(to_proto(found.model))
        response.artifact_matches = found.model.artifact_sha256 == prediction.model.artifact_sha256
    return response


class GovernanceServicer(pb_grpc.GovernanceServiceServicer):
    """Thin adapter from gRPC to the use cases."""

    def __init__(self, gov: handlers.Governance) -> None:
        """Serves the use cases over ``gov``'s adapters."""
        self.gov = gov

    async def _call(self, context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
        try:
            return await work
        except errors.GovernanceError as exc:
            await _abort(context, status_of(exc), str(exc))
        except (nats.errors.Error, TimeoutError, ConnectionError) as exc:
            log.warning("event log unavailable: %r", exc)  # the exception's text stays in our log
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "event log unavailable, retry")
        except sqlalchemy.exc.OperationalError as exc:
            log.warning("registry database unavailable: %s", str(exc).splitlines()[0])
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "registry database unavailable, retry")

    async def RegisterModel(
        self, request: pb.RegisterModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterModelResponse:
        command = RegisterModel(
            model_name=request.model_name,
            version=request.version,
            onnx_model=request.onnx_model,
            dataset_sha256=request.dataset_sha256,
            feature_set_version=request.feature_set_version,
            feature_names=tuple(request.feature_names),
            review_threshold=request.thresholds.review,
            decline_threshold=request.thresholds.decline,
            registered_by=await actor_id(context, request, "registered_by"),
            code_revision=request.code_revision,
            params=dict(request.params),
            metrics=dict(request.metrics),
            explainer_model=request.explainer_model,
            reference_profile=request.reference_profile if request.HasField("reference_profile") else None,
            data_split=dict(request.data_split),
        )
        view = await self._call(context, handlers.register_model(self.gov, command))
        return pb.RegisterModelResponse(model=to_proto(view))

    async def ApproveModel(
        self, request: pb.ApproveModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApproveModelResponse:
        approver = await actor_id(context, request, "approver")
        command = ApproveModel(request.model_name, request.version, approver, request.comment)
        view = await self._call(context, handlers.approve_model(self.gov, command))
        return pb.ApproveModelResponse(model=to_proto(view))

    async def DeployModel(
        self, request: pb.DeployModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeployModelResponse:
        try:
            role = role_from_proto(request.role)
        except ValueError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        deployed_by = await actor_id(context, request, "deployed_by")
        command = DeployModel(request.model_name, request.version, role, deployed_by, request.canary_percent)
        view, load_ms = await self._call(context, handlers.deploy_model(self.gov, command))
        return pb.DeployModelResponse(model=to_proto(view), load_ms=load_ms)

    async def PromoteModel(
        self, request: pb.PromoteModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.PromoteModelResponse:
        promoted_by = await actor_id(context, request, "promoted_by")
        command = PromoteModel(request.model_name, request.version, promoted_by, request.reason)
        view = await self._call(context, handlers.promote_model(self.gov, command))
        return pb.PromoteModelResponse(model=to_proto(view))

    async def RollbackModel(
        self, request: pb.RollbackModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackModelResponse:
        rolled_back_by = await actor_id(context, request, "rolled_back_by")
        command = RollbackModel(request.model_name, rolled_back_by, request.reason)
        view = await self._call(context, handlers.rollback_model(self.gov, command))
        return pb.RollbackModelResponse(model=to_proto(view))

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        views = await self._call(context, queries.list_models(self.gov, request.model_name))
        return pb.ListModelsResponse(models=[to_proto(v) for v in views])

    async def GetServingModels(
        self, request: pb.GetServingModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServingModelsResponse:
        views = await self._call(context, queries.get_serving_models(self.gov))
        return pb.GetServingModelsResponse(models=[to_proto(v) for v in views])

    async def GetModel(self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext) -> pb.GetModelResponse:
        lineage = await self._call(context, queries.get_model(self.gov, request.model_name, request.version))
        return lineage_to_proto(lineage)

    async def GetLiveModel(
        self, request: pb.GetLiveModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLiveModelResponse:
        moment = request.at.ToDatetime(tzinfo=UTC)
        view = await self._call(context, queries.live_model(self.gov, request.model_name, moment))
        return pb.GetLiveModelResponse(model=to_proto(view)) if view else pb.GetLiveModelResponse()

    async def GetModelArtifact(
        self, request: pb.GetModelArtifactRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelArtifactResponse:
        content = await self._call(context, queries.get_artifact(self.gov, request.sha256))
        return pb.GetModelArtifactResponse(content=content)

    async def GetDecisionModel(
        self, request: pb.GetDecisionModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDecisionModelResponse:
        found = await self._call(context, queries.decided_by(self.gov, request.transaction_id))
        return decision_to_proto(found)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # it always raises
