"""ForgetCardholder: erase a cardholder inside the immutable log by destroying the card's subject key.

Order (each step idempotent, so a request cut short can simply be sent again): find the card's subject in
the key store, append SubjectErased on PRIVACY (once per subject, with the calling principal), then destroy
the key and the card -> subject mapping. Neither the PAN nor the card token reaches an event, a log line or
the answer. See docs/privacy.md.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraudshared.identity import current_principal
from services.ingest.domain.errors import CardholderUnknown
from services.ingest.service_layer.handlers import IngestDeps, card_token_of

ERASURE_SCHEMA_VERSION = 2  # requested_by is the authenticated principal


async def forget_cardholder(
    request: ingest.ForgetCardholderRequest, deps: IngestDeps
) -> ingest.ForgetCardholderResponse:
    """Destroy the card's data key: its sealed card token reads as <erased>; the log still verifies."""
    if deps.erasures is None:
        raise RuntimeError("ingest was wired without an erasure log")
    requested_by = current_principal().id  # before any work: no principal, nothing happens
    if request.WhichOneof("card") == "pan":
        token = card_token_of(ingest.ScoreTransactionRequest(pan=request.pan), deps.tokenizer)
    else:
        token = request.card_token
    keys = deps.subjects.store
    subject = await asyncio.to_thread(keys.find, token)
    if subject is None:
        raise CardholderUnknown("no subject for that card: never seen by this platform, or already forgotten")
    erased = privacy_events.SubjectErased(
        schema_version=ERASURE_SCHEMA_VERSION,
        subject_id=subject.subject_id,
        requested_by=requested_by,
        reason=request.reason,
    )
    erased.erased_at.FromDatetime(datetime.now(UTC))
    recorded = await deps.erasures.append_erased(erased)
    await asyncio.to_thread(keys.forget, token)
    return ingest.ForgetCardholderResponse(subject_id=subject.subject_id, recorded=recorded)
