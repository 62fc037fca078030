"""Property-based: no request to any public method answers UNKNOWN or INTERNAL, or leaks Python text (issue 12).

One real grpc.aio server on loopback (the shared guard, validation and metrics interceptors) serves the five
real servicers and governance's AccessService over the in-memory fakes their unit tests use, each call run
for one principal (`ActingAs`; authentication and roles are tested in tests/integration/test_identity_*). It
runs on its own event loop thread, and the tests call it with raw bytes through a blocking channel. Requests
are arbitrary messages built from each request type's descriptor (out-of-range Timestamps, huge and PAN-like
strings, any number), plus random bytes, flipped bytes and invalid UTF-8 in a string field
(tests/unit/request_strategies.py). Every TransactionReceived ingest accepts must survive the envelope's
`to_nats` -> `from_nats` unchanged.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.access.v1 import access_service_pb2 as access_pb
from fraud.access.v1 import access_service_pb2_grpc as access_grpc
from fraud.events.v1 import transaction_events_pb2 as events
from fraud.features.v1 import feature_service_pb2 as features
from fraud.features.v1 import feature_service_pb2_grpc as features_grpc
from fraud.governance.v1 import governance_service_pb2 as governance_pb
from fraud.governance.v1 import governance_service_pb2_grpc as governance_grpc
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraud.monitor.v1 import monitor_service_pb2 as monitor
from fraud.monitor.v1 import monitor_service_pb2_grpc as monitor_grpc
from fraud.scoring.v1 import scoring_service_pb2 as scoring
from fraud.scoring.v1 import scoring_service_pb2_grpc as scoring_grpc
from fraudshared.events.envelope import event_id, from_nats, new_envelope, to_nats
from fraudshared.grpc_server import build_server
from fraudshared.identity.principal import Principal, acting_as
from fraudshared.service import grpc_message_options
from fraudshared.unary_interceptor import UnaryWrappingInterceptor
from services.features.entrypoints.grpc_servicer import FeatureServicer
from services.features.service_layer.handlers import FeatureState
from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine
from services.governance.entrypoints.access_servicer import AccessServicer
from services.governance.entrypoints.grpc_servicer import GovernanceServicer
from services.governance.service_layer import handlers as governance
from services.governance.service_layer.access import Access
from services.ingest.entrypoints.grpc_servicer import IngestServicer, RequestLimits
from services.monitor.domain.counters import PredictionCounters
from services.monitor.entrypoints.grpc_servicer import MonitorServicer
from services.scoring.entrypoints.grpc_servicer import ScoringServicer
from services.scoring.service_layer.handlers import ScoringDeps
from tests.unit.governance.governance_fakes import (
    Clock,
    FakeArtifacts,
    FakeDecisionLog,
    FakeEventStore,
    FakeModelServer,
    fake_validate,
)
from tests.unit.governance.test_governance_access import FakeAccessLog
from tests.unit.request_strategies import NANOS, SECONDS, bodies
from tests.unit.test_features_service import FakeFeatureLog
from tests.unit.test_ingest_handlers import PAN, FakeLog, make_deps
from tests.unit.test_scoring import FakePredictions, FakeRunner, champion_catalog

T = TypeVar("T")
ADDERS = {
    "fraud.ingest.v1.IngestService": ingest_grpc.add_IngestServiceServicer_to_server,
    "fraud.features.v1.FeatureService": features_grpc.add_FeatureServiceServicer_to_server,
    "fraud.scoring.v1.ScoringService": scoring_grpc.add_ScoringServiceServicer_to_server,
    "fraud.governance.v1.GovernanceService": governance_grpc.add_GovernanceServiceServicer_to_server,
    "fraud.monitor.v1.MonitorService": monitor_grpc.add_MonitorServiceServicer_to_server,
    "fraud.access.v1.AccessService": access_grpc.add_AccessServiceServicer_to_server,
}
METHODS = [
    (f"/{service.full_name}/{method.name}", GetMessageClass(method.input_type))
    for module in (ingest, features, scoring, governance_pb, monitor, access_pb)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
SCORE = "/fraud.ingest.v1.IngestService/ScoreTransaction"
PYTHON_TEXT = re.compile(r"Traceback|<class |Unexpected|\b[A-Z]\w*(Error|Exception)\b")
CALLER = Principal("user", "dev-property")  # the auth interceptor's part: each handler runs for a principal
ROLES = ("scorer", "labeler", "analyst", "model-owner", "approver", "auditor", "privacy-officer", "admin")
FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))


class RoundTripLog(FakeLog):
    """The ingest fake log, also writing each TransactionReceived as the real log does and reading it back."""

    def __init__(self) -> None:
        super().__init__()
        self.unreadable: list[str] = []

    async def append_received(self, event: events.TransactionReceived) -> events.TransactionReceived | None:
        try:  # the envelope as fraudshared.events.once.OnceLog builds it for the TRANSACTIONS stream
            envelope = new_envelope(
                event,
                source="/fraud/ingest",
                subject=event.transaction_id,
                event_id=event_id("TransactionReceived", event.transaction_id),
                time=event.event_time.ToDatetime(tzinfo=UTC),
                schema_version=max(1, event.schema_version),
            )
            back = from_nats(*to_nats(envelope))
            if back != envelope or back.payload(events.TransactionReceived) != event:
                self.unreadable.append(f"{event.transaction_id}: read back differently")
        except Exception as exc:  # recorded for the test to report; the fake still appends
            self.unreadable.append(f"{event.transaction_id}: {exc!r}")
        return await super().append_received(event)


class ActingAs(UnaryWrappingInterceptor):
    """Runs every unary handler as `principal`, as the auth interceptor does for an authenticated caller."""

    def __init__(self, principal: Principal) -> None:
        super().__init__()
        self.principal = principal

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        async def as_principal(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with acting_as(self.principal):
                return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            as_principal,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class Platform:
    """The servicers behind one real server on a loop thread of its own (SQLite objects stay there)."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="grpc-server", daemon=True)
        self.thread.start()
        self.ingest_log = RoundTripLog()
        self.server, port = self._run(self._start(tmp))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    async def _start(self, tmp: Path) -> tuple[grpc.aio.Server, int]:
        deps, _, _, _ = make_deps()
        deps.log = self.ingest_log
        registry = RegistryProjection(make_engine(f"sqlite:///{tmp / 'registry.db'}"))
        registry.create()
        access_log = FakeAccessLog()
        gov = governance.Governance(
            FakeEventStore(), registry, FakeArtifacts(), FakeModelServer(), fake_validate,
            decisions=FakeDecisionLog(), clock=Clock(),
        )  # fmt: skip
        servicers = {
            "fraud.ingest.v1.IngestService": IngestServicer(deps, RequestLimits(max_future_skew_s=300)),
            "fraud.features.v1.FeatureService": FeatureServicer(FeatureState(), FakeFeatureLog()),
            "fraud.scoring.v1.ScoringService": ScoringServicer(
                ScoringDeps(catalog=champion_catalog(), runner=FakeRunner(0.4), predictions=FakePredictions())
            ),
            "fraud.governance.v1.GovernanceService": GovernanceServicer(gov),
            "fraud.monitor.v1.MonitorService": MonitorServicer(PredictionCounters()),
            "fraud.access.v1.AccessService": AccessServicer(Access(access_log, access_log, ROLES)),
        }
        specs = [(ADDERS[name], servicer, name) for name, servicer in servicers.items()]
        # Kilobytes as for ingest: a larger body must be refused cleanly too (RESOURCE_EXHAUSTED).
        server, port = await build_server(
            "all", specs, 0, tracing=False, options=grpc_message_options("ingest"), interceptors=[ActingAs(CALLER)]
        )
        await server.start()
        return server, port

    def call(self, method: str, body: bytes) -> tuple[grpc.StatusCode, str]:
        try:
            self.channel.unary_unary(method)(body, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
        return grpc.StatusCode.OK, ""

    def close(self) -> None:
        self.channel.close()
        self._run(self.server.stop(None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    served = Platform(tmp_path_factory.mktemp("property-requests"))
    yield served
    served.close()


def _assert_clear(code: grpc.StatusCode, details: str) -> None:
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), f"{code.name}: {details}"
    assert not PYTHON_TEXT.search(details), details


def test_every_public_method_is_covered() -> None:
    assert len(METHODS) == 20 and SCORE in dict(METHODS)


@pytest.mark.parametrize(("method", "request_type"), METHODS, ids=[m.rsplit("/", 1)[1] for m, _ in METHODS])
def test_no_request_answers_unknown_or_internal(platform: Platform, method: str, request_type: type[Message]) -> None:
    @FAST
    @given(body=bodies(request_type))
    def check(body: bytes) -> None:
        _assert_clear(*platform.call(method, body))

    check()
    assert platform.ingest_log.unreadable == []


def _near_valid_score_requests() -> st.SearchStrategy[ingest.ScoreTransactionRequest]:
    def build(
        tx: str, pan: str, amount: int, seconds: int, nanos: int, terminal: str
    ) -> ingest.ScoreTransactionRequest:
        message = ingest.ScoreTransactionRequest(transaction_id=tx, pan=pan, terminal_id=terminal)
        message.amount.amount_minor, message.amount.currency = amount, "EUR"
        message.event_time.seconds, message.event_time.nanos = seconds, nanos
        return message

    return st.builds(
        build,
        st.from_regex(r"[A-Za-z0-9_:-]{1,64}", fullmatch=True),
        st.sampled_from([PAN, "5555555555554444", "378282246310005", "4111111111111112"]),
        st.integers(-1, 10**12),
        SECONDS,
        st.one_of(st.integers(0, 999_999_999), NANOS),
        st.sampled_from(["T1", "T-4111-1111-1111-1111", "t" * 64, "T 1"]),
    )


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(message=_near_valid_score_requests())
def test_every_accepted_transaction_reads_back_from_its_envelope(
    platform: Platform, message: ingest.ScoreTransactionRequest
) -> None:
    code, details = platform.call(SCORE, message.SerializeToString())
    _assert_clear(code, details)
    if code == grpc.StatusCode.OK:
        recorded = platform.ingest_log.received[message.transaction_id]
        assert recorded.event_time == message.event_time
        assert recorded.event_time.seconds >= 946_684_800
    assert platform.ingest_log.unreadable == []


def test_a_valid_transaction_is_accepted_and_its_envelope_reads_back(platform: Platform) -> None:
    message = ingest.ScoreTransactionRequest(transaction_id="prop-valid-1", pan=PAN, terminal_id="T1")
    message.amount.amount_minor, message.amount.currency = 1250, "EUR"
    message.event_time.seconds, message.event_time.nanos = int(time.time()) - 60, 123_456_789
    assert platform.call(SCORE, message.SerializeToString()) == (grpc.StatusCode.OK, "")
    assert "prop-valid-1" in platform.ingest_log.received and platform.ingest_log.unreadable == []
