"""Contracts bound what is sane, and hostile requests get clear answers (issue 12, items 4 and 6).

The contract test reads every public request type of the five services (and governance's AccessService) from
their descriptors, so a new
field without a bound fails here. The hostile probe's cases (year 1, nanos -1, undecodable bytes) and the
other refusals go through a real grpc.aio server on loopback with the real ingest servicer and the in-memory
fakes of tests/unit/test_ingest_handlers.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import grpc
import grpc.aio
import pytest
from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.rpc import error_details_pb2, status_pb2

from fraud.access.v1 import access_service_pb2
from fraud.features.v1 import feature_service_pb2
from fraud.governance.v1 import governance_service_pb2
from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraud.monitor.v1 import monitor_service_pb2
from fraud.scoring.v1 import scoring_service_pb2
from fraudshared.config import ConfigError
from fraudshared.grpc_server import build_server
from fraudshared.service import grpc_message_options
from fraudshared.validation import STATUS_DETAILS_KEY, well_known_violations
from services.ingest.entrypoints.grpc_servicer import IngestServicer, RequestLimits
from services.ingest.service_layer.handlers import IngestDeps
from tests.unit.test_ingest_handlers import FakeLog, make_deps, request

SERVICES = [
    ingest.DESCRIPTOR.services_by_name["IngestService"],
    feature_service_pb2.DESCRIPTOR.services_by_name["FeatureService"],
    scoring_service_pb2.DESCRIPTOR.services_by_name["ScoringService"],
    governance_service_pb2.DESCRIPTOR.services_by_name["GovernanceService"],
    monitor_service_pb2.DESCRIPTOR.services_by_name["MonitorService"],
    access_service_pb2.DESCRIPTOR.services_by_name["AccessService"],
]
# Message fields bounded as a whole by a CEL rule on the field (their type lives in the events package).
BOUNDED_BY_CEL = {"fraud.governance.v1.RegisterModelRequest.reference_profile": "reference_profile.size"}
SCORE = "/fraud.ingest.v1.IngestService/ScoreTransaction"
YEAR_1, YEAR_2000 = -62_135_596_800, 946_684_800


def _rules(field: FieldDescriptor) -> validate_pb2.FieldRules:
    return field.GetOptions().Extensions[validate_pb2.field]


def _unbounded(field: FieldDescriptor) -> str:
    """Why ``field`` is not bounded by its rules, or "" when it is."""
    rules = _rules(field)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        if not rules.map.HasField("max_pairs"):
            return "map without max_pairs"
        for side, side_rules in ((key, rules.map.keys), (value, rules.map.values)):
            if side.type == FieldDescriptor.TYPE_STRING and not side_rules.string.HasField("max_len"):
                return "map strings without max_len"
        return ""
    if field.is_repeated:
        if not rules.repeated.HasField("max_items"):
            return "repeated without max_items"
        if field.type == FieldDescriptor.TYPE_STRING and not rules.repeated.items.string.HasField("max_len"):
            return "repeated strings without max_len"
        return ""
    if field.type == FieldDescriptor.TYPE_STRING:
        bounded = rules.string.HasField("max_len") or rules.string.HasField("len") or len(getattr(rules.string, "in"))
        return "" if bounded else "string without max_len"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "" if rules.bytes.HasField("max_len") else "bytes without max_len"
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
        window = rules.timestamp.gte.seconds == YEAR_2000 and "timestamp.max_future" in {c.id for c in rules.cel}
        return "" if window else "Timestamp without the 2000..now+1d window"
    return ""


def _fields(message: Descriptor, seen: set[str]) -> Iterator[FieldDescriptor]:
    if message.full_name in seen:
        return
    seen.add(message.full_name)
    for field in message.fields:
        yield field
        nested = field.message_type
        if nested is None or nested.GetOptions().map_entry or nested.full_name.startswith("google.protobuf."):
            continue
        if BOUNDED_BY_CEL.get(field.full_name) in {c.id for c in _rules(field).cel}:
            continue
        yield from _fields(nested, seen)


def test_every_field_of_every_public_request_is_bounded() -> None:
    requests = [method.input_type for service in SERVICES for method in service.methods]
    assert len(requests) == 20
    problems = [
        f"{field.full_name}: {problem}"
        for message in requests
        for field in _fields(message, set())
        if (problem := _unbounded(field))
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("seconds", "nanos", "problem"),
    [(YEAR_1 - 1, 0, "0001 to 9999"), (253_402_300_800, 0, "0001 to 9999"), (0, -1, "nanos"), (0, 10**9, "nanos")],
)
def test_timestamps_outside_their_definition_are_named(seconds: int, nanos: int, problem: str) -> None:
    bad = request()
    bad.event_time.seconds, bad.event_time.nanos = seconds, nanos
    found = well_known_violations(bad)
    assert [(v.field, v.rule_id) for v in found] == [("event_time", "timestamp.valid")]
    assert problem in found[0].message
    assert well_known_violations(request()) == []


def test_message_size_bound_is_kilobytes_except_governance(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dict(grpc_message_options("ingest"))["grpc.max_receive_message_length"] == 64 * 1024
    assert dict(grpc_message_options("governance"))["grpc.max_receive_message_length"] == 20 * 1024 * 1024
    monkeypatch.setenv("FRAUD_SCORING_GRPC_MAX_MESSAGE_BYTES", "8192")
    assert dict(grpc_message_options("scoring"))["grpc.max_receive_message_length"] == 8192
    monkeypatch.setenv("FRAUD_SCORING_GRPC_MAX_MESSAGE_BYTES", "1")
    with pytest.raises(ConfigError):
        grpc_message_options("scoring")


def test_future_skew_is_configured_within_a_day() -> None:
    assert RequestLimits.from_env(env={}).max_future_skew_s == 300
    assert RequestLimits.from_env(env={"FRAUD_INGEST_MAX_FUTURE_SKEW_S": "30"}).max_future_skew_s == 30
    with pytest.raises(ConfigError, match="FRAUD_INGEST_MAX_FUTURE_SKEW_S"):
        RequestLimits.from_env(env={"FRAUD_INGEST_MAX_FUTURE_SKEW_S": "172800"})


class Served:
    def __init__(self, channel: grpc.aio.Channel, log: FakeLog) -> None:
        self.channel, self.log = channel, log
        self.stub = ingest_grpc.IngestServiceStub(channel)

    async def score_raw(self, body: bytes) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.channel.unary_unary(SCORE)(body, timeout=5)
        return err.value

    async def score(self, message: ingest.ScoreTransactionRequest) -> grpc.aio.AioRpcError:
        return await self.score_raw(message.SerializeToString())


async def _serve(deps: IngestDeps) -> tuple[grpc.aio.Server, grpc.aio.Channel]:
    servicer = IngestServicer(deps, RequestLimits(max_future_skew_s=60))
    spec = (ingest_grpc.add_IngestServiceServicer_to_server, servicer, "fraud.ingest.v1.IngestService")
    server, port = await build_server("ingest", [spec], 0, tracing=False, options=grpc_message_options("ingest"))
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    deps, log, _, _ = make_deps()
    server, channel = await _serve(deps)
    yield Served(channel, log)
    await channel.close()
    await server.stop(None)


def _now(offset_s: int = 0) -> ingest.ScoreTransactionRequest:
    message = request()
    message.event_time.seconds = int(time.time()) + offset_s
    return message


def _assert_clear(err: grpc.aio.AioRpcError, code: grpc.StatusCode, starts: str) -> None:
    assert err.code() == code, err.details()
    assert (err.details() or "").startswith(starts), err.details()
    for leak in ("Traceback", "<class", "DecodeError", "ValueError", "Unexpected"):
        assert leak not in (err.details() or "")


async def test_hostile_probe_cases_are_invalid_argument_and_append_nothing(served: Served) -> None:
    year1, badnanos = _now(), _now()
    year1.event_time.seconds = YEAR_1
    badnanos.event_time.nanos = -1
    _assert_clear(await served.score(year1), grpc.StatusCode.INVALID_ARGUMENT, "event_time: must be greater")
    _assert_clear(await served.score(badnanos), grpc.StatusCode.INVALID_ARGUMENT, "event_time: must be a valid")
    garbage = bytes.fromhex("0a02fffe") + _now().SerializeToString()  # ../shared/tools/hostile_probe.py
    err = await served.score_raw(garbage)
    _assert_clear(err, grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid fraud.ingest.v1.Score")
    assert "UTF-8" in (err.details() or "")
    _assert_clear(await served.score_raw(b"\xff" * 7), grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid")
    assert served.log.received == {}


async def test_time_beyond_the_configured_skew_is_refused_in_the_validation_shape(served: Served) -> None:
    err = await served.score(_now(120))
    _assert_clear(err, grpc.StatusCode.INVALID_ARGUMENT, "event_time: must not be more than 60 s in the future")
    status = status_pb2.Status.FromString(dict(err.trailing_metadata() or ())[STATUS_DETAILS_KEY])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.reason) for v in bad_request.field_violations] == [("event_time", "timestamp.max_future_skew")]
    assert (await served.stub.ScoreTransaction(_now(30), timeout=5)).decision  # within the skew: decided


@pytest.mark.parametrize("field", ["transaction_id", "terminal_id"])
@pytest.mark.parametrize("pan_like", ["4111111111111111", "tx-4111-1111-1111-1111", "x378282246310005y"])
async def test_an_id_holding_a_card_number_is_refused_without_echoing_it(
    served: Served, field: str, pan_like: str
) -> None:
    message = _now()
    setattr(message, field, pan_like)
    err = await served.score(message)
    _assert_clear(err, grpc.StatusCode.INVALID_ARGUMENT, f"{field}: must not contain a card number")
    assert pan_like not in (err.details() or "") and "1111" not in (err.details() or "")
    assert served.log.received == {}


async def test_a_label_source_holding_a_card_number_is_refused(served: Served) -> None:
    label = ingest.ReportLabelRequest(transaction_id="tx-1", is_fraud=True, source="analyst-5555555555554444")
    label.reported_at.seconds = int(time.time())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.ReportLabel(label, timeout=5)
    _assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "source: must not contain a card number")


async def test_oversized_request_is_resource_exhausted_before_any_python(served: Served) -> None:
    err = await served.score_raw(b"\x0a" + b"\xff\xff\x04" + b"x" * 70_000)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class BrokenDecisions:
    async def decide(self, request: object, timeout: float) -> object:
        raise RuntimeError("secret internals of a broken adapter")


async def test_an_unexpected_error_is_internal_with_a_reference_and_no_python_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps, _, _, _ = make_deps()
    deps.decisions = BrokenDecisions()  # type: ignore[assignment]
    server, channel = await _serve(deps)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ingest_grpc.IngestServiceStub(channel).ScoreTransaction(_now(), timeout=5)
    finally:
        await channel.close()
        await server.stop(None)
    _assert_clear(err.value, grpc.StatusCode.INTERNAL, "internal error; reference ")
    assert "secret" not in (err.value.details() or "")
    reference = (err.value.details() or "").rsplit(" ", 1)[-1]
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in our log, under the same reference
