"""ForgetCardholder and ReportLabel through ingest's real gRPC server (mTLS + AuthInterceptor) over real JetStream.

Roles come from a Grants fold (as every service holds one): the privacy officer may erase, the scorer may
not; labelers and analysts may label, the scorer may not. What each call recorded is read back from the
streams themselves.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from fraud.access.v1 import access_events_pb2 as access_events
from fraud.common.v1 import decision_pb2 as common
from fraud.common.v1 import money_pb2
from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraudml.datagen import synthetic_pan
from fraudshared import subjects
from fraudshared.events import EventStore, default_specs, ensure_streams
from fraudshared.events.envelope import from_nats
from fraudshared.events.once import OnceLog
from fraudshared.grpc_server import ServerSecurity, build_server
from fraudshared.identity import Grants, Principal, acting_as
from fraudshared.nats_server import NatsServer
from fraudshared.privacy import ERASED, read_field
from fraudshared.privacy.keys import SqliteSubjectKeyStore
from fraudshared.privacy.resolver import SubjectResolver
from services.ingest.adapters.erasure_log import JetStreamErasureLog
from services.ingest.adapters.event_log import JetStreamTransactionLog
from services.ingest.adapters.label_log import JetStreamLabelLog
from services.ingest.domain.pan import PanTokenizer
from services.ingest.entrypoints.grpc_servicer import IngestServicer
from services.ingest.service_layer.handlers import IngestDeps, score_transaction
from tests.fixtures.identity import DevPki, aio_channel

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
ROLES = {
    "user:dev-privacy-officer": "privacy-officer",
    "user:dev-scorer": "scorer",
    "user:dev-labeler": "labeler",
    "user:dev-analyst": "analyst",
    "user:dev-analyst-2": "analyst",
}


class ApprovingDecisions:
    """The decision path is not under test here: every transaction is approved, nothing recorded."""

    async def decide(self, request: features.ComputeFeaturesRequest, timeout: float) -> scoring.ScoreFeaturesResponse:
        return scoring.ScoreFeaturesResponse(decision=common.DECISION_APPROVE, score=0.01)


@dataclass
class Served:
    address: str
    js: JetStreamContext
    deps: IngestDeps

    async def transaction(self, tx_id: str, pan: str) -> events.TransactionReceived:
        r = ingest.ScoreTransactionRequest(
            transaction_id=tx_id, pan=pan, terminal_id="T-RPC", amount=money_pb2.Money(amount_minor=100, currency="EUR")
        )
        r.event_time.FromDatetime(NOW)
        with acting_as(Principal("user", "dev-scorer")):
            await score_transaction(r, self.deps)
        received = await self.deps.log.find_received(tx_id)
        assert received is not None
        return received

    async def on_subject(self, stream: str, subject: str) -> int:
        info = await self.js.stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def served(dev_pki: DevPki) -> AsyncIterator[Served]:
    root = Path(tempfile.mkdtemp(prefix="privacy-rpc-"))
    with NatsServer(root / "nats") as nats_server:
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_streams(js, default_specs())
            store = EventStore(js)
            once = OnceLog(js, store, source="/test/ingest")
            grants = Grants()
            for principal, role in ROLES.items():
                grants.apply(access_events.RoleGranted(principal=principal, role=role, granted_by="user:root"))
            deps = IngestDeps(
                log=JetStreamTransactionLog(once),
                decisions=ApprovingDecisions(),
                tokenizer=PanTokenizer(b"p" * 32),
                subjects=SubjectResolver(SqliteSubjectKeyStore(root / "subject-keys.db")),
                labels=JetStreamLabelLog(js, store, source="/test/ingest"),
                erasures=JetStreamErasureLog(once),
                roles_of=grants.roles_of,
            )
            full_name = ingest.DESCRIPTOR.services_by_name["IngestService"].full_name
            server, port = await build_server(
                "ingest",
                [(ingest_grpc.add_IngestServiceServicer_to_server, IngestServicer(deps), full_name)],
                tracing=False,
                security=ServerSecurity(files=dev_pki.service_files("ingest"), grants=grants),
            )
            await server.start()
            try:
                yield Served(f"127.0.0.1:{port}", js, deps)
            finally:
                await server.stop(None)
        finally:
            await nc.close()


async def forget(served: Served, who: str, request: ingest.ForgetCardholderRequest) -> ingest.ForgetCardholderResponse:
    async with aio_channel(served.address, who) as channel:
        answer: ingest.ForgetCardholderResponse = await ingest_grpc.IngestServiceStub(channel).ForgetCardholder(
            request, timeout=10
        )
        return answer


async def label(served: Served, who: str, tx_id: str, is_fraud: bool, source: int) -> ingest.ReportLabelResponse:
    r = ingest.ReportLabelRequest(transaction_id=tx_id, is_fraud=is_fraud, source="case-1", label_source=source)
    r.reported_at.FromDatetime(NOW + timedelta(minutes=30))
    async with aio_channel(served.address, who) as channel:
        answer: ingest.ReportLabelResponse = await ingest_grpc.IngestServiceStub(channel).ReportLabel(r, timeout=10)
        return answer


async def test_forget_cardholder_as_the_privacy_officer_erases_and_records_the_principal(served: Served) -> None:
    pan = synthetic_pan(661001)
    received = await served.transaction("rpc-forget-1", pan)
    answer = await forget(served, "dev-privacy-officer", ingest.ForgetCardholderRequest(pan=pan, reason="ticket 9"))
    assert answer.subject_id == received.subject_id and answer.recorded
    keys = served.deps.subjects.store
    assert read_field(keys, received.subject_id, "card_token", received.sealed_card_token) == ERASED
    raw = await served.js.get_last_msg("PRIVACY", subjects.subject_erased(received.subject_id))
    erased = from_nats(raw.headers, raw.data).payload(privacy_events.SubjectErased)
    assert (erased.requested_by, erased.reason, erased.schema_version) == ("user:dev-privacy-officer", "ticket 9", 2)
    assert pan.encode() not in raw.data

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await forget(served, "dev-privacy-officer", ingest.ForgetCardholderRequest(pan=pan, reason="again"))
    assert again.value.code() == grpc.StatusCode.NOT_FOUND and "already forgotten" in (again.value.details() or "")
    assert pan not in (again.value.details() or "")


async def test_forget_cardholder_as_a_scorer_is_permission_denied_and_erases_nothing(served: Served) -> None:
    pan = synthetic_pan(661002)
    received = await served.transaction("rpc-forget-2", pan)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forget(served, "dev-scorer", ingest.ForgetCardholderRequest(pan=pan, reason="not mine to ask"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "user:dev-scorer may not call" in (refused.value.details() or "")
    assert served.deps.subjects.store.find(served.deps.tokenizer.tokenize(pan)) is not None
    assert await served.on_subject("PRIVACY", subjects.subject_erased(received.subject_id)) == 0


async def test_labels_record_their_principal_a_retry_records_nothing_and_a_scorer_cannot_label(served: Served) -> None:
    tx = "rpc-label-1"
    await served.transaction(tx, synthetic_pan(661003))
    on_subject = subjects.label_reported(tx)
    first = await label(served, "dev-analyst", tx, False, events.LABEL_SOURCE_ANALYST)
    assert first.outcome == ingest.LABEL_OUTCOME_FIRST and first.appended
    retry = await label(served, "dev-analyst", tx, False, events.LABEL_SOURCE_ANALYST)
    assert (retry.outcome, retry.appended) == (ingest.LABEL_OUTCOME_DUPLICATE, False)
    assert await served.on_subject("LABELS", on_subject) == 1  # the retry produced no event
    chargeback = await label(served, "dev-labeler", tx, True, events.LABEL_SOURCE_CHARGEBACK)
    assert chargeback.outcome == ingest.LABEL_OUTCOME_CORRECTION and chargeback.is_fraud_in_force
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await label(served, "dev-scorer", tx, False, events.LABEL_SOURCE_CHARGEBACK)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The source kind sets precedence, so it must match the reporter's role: an analyst cannot claim a
    # chargeback to overrule, nor the chargeback feed an analyst's verdict.
    for who, kind in (("dev-analyst", events.LABEL_SOURCE_CHARGEBACK), ("dev-labeler", events.LABEL_SOURCE_ANALYST)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await label(served, who, tx, False, kind)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"user:{who} may not report a {events.LabelSource.Name(kind)} label" in (refused.value.details() or "")
    history, _ = await served.deps.labels.history(tx)  # type: ignore[union-attr]
    assert [(x.principal, x.label_source, x.is_fraud) for x in history] == [
        ("user:dev-analyst", events.LABEL_SOURCE_ANALYST, False),
        ("user:dev-labeler", events.LABEL_SOURCE_CHARGEBACK, True),
    ]


async def test_two_labels_racing_are_both_recorded_each_classified_against_what_it_follows(served: Served) -> None:
    tx = "rpc-label-race"
    await served.transaction(tx, synthetic_pan(661004))
    answers = await asyncio.gather(
        label(served, "dev-analyst-2", tx, False, events.LABEL_SOURCE_ANALYST),
        label(served, "dev-analyst", tx, True, events.LABEL_SOURCE_ANALYST),
    )
    history, _ = await served.deps.labels.history(tx)  # type: ignore[union-attr]
    assert len(history) == 2 and {x.principal for x in history} == {"user:dev-analyst-2", "user:dev-analyst"}
    outcomes = sorted(a.outcome for a in answers)
    assert outcomes == [ingest.LABEL_OUTCOME_FIRST, ingest.LABEL_OUTCOME_CORRECTION]
    assert all(a.appended for a in answers)
    second = next(a for a in answers if a.outcome == ingest.LABEL_OUTCOME_CORRECTION)
    assert second.is_fraud_in_force == history[-1].is_fraud  # within one source the latest wins
