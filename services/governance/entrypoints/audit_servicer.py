"""AuditService over grpc.aio: the audit CLIs' runs recorded on AUDIT as AuditCommandRun, by the caller.

Only governance appends to AUDIT (its notary seals the log there), so a read-only auditor records its run
through this call. Who may call it (auditor) is checked by the shared auth interceptor; the recorded actor is
the authenticated caller (`current_principal()`), never a request field. protovalidate bounds every field;
this layer adds what the rules cannot say: the run does not finish before it starts, and no argument, note
or outcome holds a card number (the error names the field, never the value).
"""

from __future__ import annotations

import logging
import uuid
from typing import NoReturn

import grpc
import grpc.aio
import nats.errors

from fraud.audit.v1 import audit_service_pb2 as pb
from fraud.audit.v1 import audit_service_pb2_grpc as pb_grpc
from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudshared.card_numbers import contains_card_number
from fraudshared.identity.principal import NoPrincipal, current_principal
from fraudshared.validation import FieldViolation, abort_invalid
from services.governance.adapters.audit_run_log import JetStreamAuditRunLog

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuditService"].full_name
CARD_NUMBER_RULE = "audit.no_card_number"
ORDER_RULE = "audit.finished_after_started"


def violations(request: pb.RecordAuditRunRequest) -> list[FieldViolation]:
    """What the proto rules cannot say about ``request``: time order, no card number in any text."""
    found = []
    if request.finished_at.ToNanoseconds() < request.started_at.ToNanoseconds():
        found.append(FieldViolation("finished_at", "must not be before started_at", ORDER_RULE))
    texts = [(f"arguments[{i}]", a) for i, a in enumerate(request.arguments)]
    texts += [("note", request.note), ("outcome", request.outcome)]
    for field, text in texts:
        if contains_card_number(text):
            found.append(FieldViolation(field, "must not hold a card number", CARD_NUMBER_RULE))
    return found


def to_event(request: pb.RecordAuditRunRequest, actor: str) -> audit_pb.AuditCommandRun:
    """The AuditCommandRun for ``request`` as run by ``actor`` (the note, if any, is the last argument)."""
    arguments = [*request.arguments, *([f"note={request.note}"] if request.note else [])]
    run = audit_pb.AuditCommandRun(
        run_id=uuid.uuid4().hex,
        command=request.command,
        arguments=arguments,
        actor=actor,
        host=request.host,
        exit_code=request.exit_code,
        outcome=request.outcome,
    )
    run.started_at.CopyFrom(request.started_at)
    run.finished_at.CopyFrom(request.finished_at)
    return run


class AuditServicer(pb_grpc.AuditServiceServicer):
    """Thin adapter from gRPC to the audit run log."""

    def __init__(self, runs: JetStreamAuditRunLog) -> None:
        """Records runs on ``runs``."""
        self.runs = runs

    async def RecordAuditRun(
        self, request: pb.RecordAuditRunRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordAuditRunResponse:
        try:
            actor = current_principal().id
        except NoPrincipal:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no authenticated caller")
        broken = violations(request)
        if broken:
            await abort_invalid(context, broken, request.DESCRIPTOR.full_name)
        run = to_event(request, actor)
        try:
            sequence = await self.runs.record(run)
        except (nats.errors.Error, TimeoutError, ConnectionError) as exc:
            log.warning("audit log unavailable: %r", exc)
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "audit log unavailable, retry")
        log.info("recorded %s by %s as AUDIT seq %d (exit %d)", run.command, actor, sequence, run.exit_code)
        return pb.RecordAuditRunResponse(run_id=run.run_id, actor=actor, sequence=sequence)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # it always raises
