"""Governance domain and use cases, with small in-memory fakes of the ports (no NATS, no Triton)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message

from services.governance.adapters.registry_sql import RegistryProjection
from services.governance.adapters.registry_tables import make_engine
from services.governance.domain import events as ev
from services.governance.domain import model as domain
from services.governance.domain.commands import ApproveModel, DeployModel, RegisterModel, Role
from services.governance.domain.errors import (
    ConcurrentChange,
    DeploymentFailed,
    DuplicateVersion,
    InvalidArtifact,
    InvalidCommand,
    InvalidTransition,
    UnknownVersion,
)
from services.governance.domain.model import Model, Stage
from services.governance.service_layer import handlers
from services.governance.service_layer.ports import History

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FEATURES = ("amount", "card_tx_count_1d", "terminal_risk_7d")
SHA = "ab" * 32


def register_cmd(version: str = "1.0.0", **changes: object) -> RegisterModel:
    fields: dict[str, object] = {
        "model_name": "card-fraud-gbdt",
        "version": version,
        "onnx_model": b"onnx-bytes-" + version.encode(),
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "fs-1",
        "feature_names": FEATURES,
        "review_threshold": 0.5,
        "decline_threshold": 0.9,
        "registered_by": "trainer",
        "metrics": {"auc_roc": 0.91},
    }
    fields.update(changes)
    return RegisterModel(**fields)  # type: ignore[arg-type]


def fold(*events: Message) -> Model:
    return Model.from_history("card-fraud-gbdt", [(e, i + 1) for i, e in enumerate(events)])


def registered(version: str = "1.0.0") -> ev.ModelRegistered:
    return domain.decide_register(Model("card-fraud-gbdt"), register_cmd(version), SHA, NOW)


def approved(version: str = "1.0.0", approver: str = "alice") -> ev.ModelApproved:
    return domain.decide_approve(fold(registered(version)), ApproveModel("card-fraud-gbdt", version, approver), NOW)


def deploy_cmd(version: str = "1.0.0", role: Role = Role.CHAMPION, percent: int = 0) -> DeployModel:
    return DeployModel("card-fraud-gbdt", version, role, "ops", percent)


# --- domain -------------------------------------------------------------------------------------------


def test_register_produces_event_with_lineage() -> None:
    event = registered()
    assert (event.model_name, event.version, event.artifact_sha256) == ("card-fraud-gbdt", "1.0.0", SHA)
    assert list(event.feature_names) == list(FEATURES)
    assert (event.thresholds.review, event.thresholds.decline) == (0.5, 0.9)
    assert event.registered_at.ToDatetime(UTC) == NOW
    assert fold(event).get("1.0.0").stage is Stage.REGISTERED


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"version": "1.0"}, InvalidCommand),
        ({"review_threshold": 0.95}, InvalidCommand),
        ({"feature_names": ("a", "a")}, InvalidCommand),
        ({"model_name": "other"}, InvalidCommand),
    ],
)
def test_register_rejects_bad_commands(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        domain.decide_register(Model("card-fraud-gbdt"), register_cmd(**changes), SHA, NOW)  # type: ignore[arg-type]


def test_register_twice_is_duplicate() -> None:
    with pytest.raises(DuplicateVersion, match="already registered"):
        domain.decide_register(fold(registered()), register_cmd(), SHA, NOW)


def test_one_approval_moves_registered_to_approved_and_keeps_the_approver() -> None:
    model = fold(registered(), approved())
    version = model.get("1.0.0")
    assert version.stage is Stage.APPROVED
    assert [a.approver for a in version.approvals] == ["alice"]
    assert model.last_seq == 2


def test_approve_unknown_version_and_twice() -> None:
    with pytest.raises(UnknownVersion):
        domain.decide_approve(fold(registered()), ApproveModel("card-fraud-gbdt", "9.9.9", "alice"), NOW)
    with pytest.raises(InvalidTransition, match="only a registered version"):
        domain.decide_approve(fold(registered(), approved()), ApproveModel("card-fraud-gbdt", "1.0.0", "bob"), NOW)


def test_deploy_needs_approval() -> None:
    with pytest.raises(InvalidTransition, match="only an approved version can be deployed"):
        domain.decide_deploy(fold(registered()), deploy_cmd(), NOW)


def test_deploy_champion_then_new_champion_retires_the_old_one() -> None:
    model = fold(registered("1.0.0"), approved("1.0.0"), registered("1.1.0"), approved("1.1.0"))
    first = domain.decide_deploy(model, deploy_cmd("1.0.0"), NOW)
    assert first.triton_model_name == "card-fraud-gbdt-1-0-0"
    assert first.artifact_sha256 == SHA
    model.apply(first, 5)
    assert model.serving(Role.CHAMPION) is model.get("1.0.0")
    with pytest.raises(InvalidTransition):
        domain.check_deploy(model, deploy_cmd("1.0.0", Role.SHADOW))
    model.apply(domain.decide_deploy(model, deploy_cmd("1.1.0"), NOW), 6)
    assert model.get("1.0.0").stage is Stage.RETIRED and model.get("1.0.0").role is None
    assert model.serving(Role.CHAMPION) is model.get("1.1.0")


@pytest.mark.parametrize(("role", "percent"), [(Role.CANARY, 0), (Role.CANARY, 101), (Role.SHADOW, 10)])
def test_canary_percent_must_fit_the_role(role: Role, percent: int) -> None:
    with pytest.raises(InvalidCommand, match="canary"):
        domain.check_deploy(fold(registered(), approved()), deploy_cmd(role=role, percent=percent))


def test_business_ids_are_printable_and_distinct() -> None:
    deployed = domain.decide_deploy(fold(registered(), approved()), deploy_cmd(), NOW)
    ids = {ev.business_id(e) for e in (registered(), approved(approver="Alice Smith"), deployed)}
    assert len(ids) == 3
    assert all(" " not in i and i.isascii() for i in ids)


def test_decode_round_trip_and_unknown_type() -> None:
    event = approved()
    assert ev.decode(event.DESCRIPTOR.full_name, event.SerializeToString()) == event
    with pytest.raises(ev.UnknownEventType):
        ev.decode("fraud.events.v1.Nope", b"")


# --- use cases with fakes -----------------------------------------------------------------------------


class FakeEventStore:
    """In-memory ModelEventLog: one list of (subject, event), sequences = positions + 1."""

    def __init__(self) -> None:
        self.stream: list[tuple[str, Message]] = []
        self.before_append: Callable[[], None] | None = None

    async def load(self, model_name: str) -> History:
        return [(e, i + 1) for i, (s, e) in enumerate(self.stream) if s == model_name]

    def last_on(self, model_name: str) -> int:
        return max((i + 1 for i, (s, _) in enumerate(self.stream) if s == model_name), default=0)

    async def append(self, event: Message, *, expected_last_seq: int) -> int:
        if self.before_append is not None:
            hook, self.before_append = self.before_append, None
            hook()
        name = event.model_name
        if self.last_on(name) != expected_last_seq:
            raise ConcurrentChange(f"expected {expected_last_seq}, found {self.last_on(name)}")
        self.stream.append((name, event))
        return len(self.stream)

    async def read_all(self, after_seq: int) -> AsyncIterator[tuple[Message, int]]:
        for i, (_, event) in enumerate(self.stream[after_seq:], start=after_seq + 1):
            yield event, i

    async def last_seq(self) -> int:
        return len(self.stream)


class FakeArtifacts:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return sha

    def get(self, sha256: str) -> bytes:
        return self.blobs[sha256]


class FakeModelServer:
    def __init__(self) -> None:
        self.loaded: dict[str, int] = {}
        self.fail_with: Exception | None = None

    async def deploy(self, serving_name: str, onnx_model: bytes, n_features: int) -> None:
        self.loaded[serving_name] = n_features  # a failure below leaves it half-loaded: the use case must undo
        if self.fail_with is not None:
            raise self.fail_with

    async def undeploy(self, serving_name: str) -> None:
        self.loaded.pop(serving_name, None)


def fake_onnx_check(data: bytes, feature_names: tuple[str, ...]) -> None:
    if data.startswith(b"corrupt"):
        raise InvalidArtifact("onnx_model is not a readable ONNX file")


@pytest.fixture
def gov(tmp_path: Path) -> handlers.Governance:
    registry = RegistryProjection(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    registry.create()
    return handlers.Governance(
        FakeEventStore(), registry, FakeArtifacts(), FakeModelServer(), fake_onnx_check, clock=lambda: NOW
    )


async def test_register_approve_deploy_through_the_use_cases(gov: handlers.Governance) -> None:
    view = await handlers.register_model(gov, register_cmd())
    assert view.stage is Stage.REGISTERED and view.metrics == {"auc_roc": 0.91}
    assert (await handlers.approve_model(gov, ApproveModel("card-fraud-gbdt", "1.0.0", "alice"))).approvers == (
        "alice",
    )
    view, load_ms = await handlers.deploy_model(gov, deploy_cmd())
    assert view.stage is Stage.DEPLOYED and view.role is Role.CHAMPION and load_ms >= 0
    assert gov.model_server.loaded == {"card-fraud-gbdt-1-0-0": 3}  # type: ignore[attr-defined]
    assert [v.version for v in await handlers.get_serving_models(gov)] == ["1.0.0"]
    assert [type(e).__name__ for _, e in gov.events.stream] == [  # type: ignore[attr-defined]
        "ModelRegistered",
        "ModelApproved",
        "ModelDeployed",
    ]


async def test_corrupt_onnx_appends_and_stores_nothing(gov: handlers.Governance) -> None:
    with pytest.raises(InvalidArtifact):
        await handlers.register_model(gov, register_cmd(onnx_model=b"corrupt"))
    assert gov.events.stream == [] and gov.artifacts.blobs == {}  # type: ignore[attr-defined]


async def test_failed_deploy_leaves_registry_unchanged(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd())
    await handlers.approve_model(gov, ApproveModel("card-fraud-gbdt", "1.0.0", "alice"))
    gov.model_server.fail_with = DeploymentFailed("load failed")  # type: ignore[attr-defined]
    with pytest.raises(DeploymentFailed):
        await handlers.deploy_model(gov, deploy_cmd())
    assert len(gov.events.stream) == 2  # type: ignore[attr-defined]
    assert gov.model_server.loaded == {}  # type: ignore[attr-defined]
    assert (await handlers.list_models(gov))[0].stage is Stage.APPROVED


async def test_a_racing_writer_makes_the_append_fail_and_the_load_is_undone(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd("1.0.0"))
    await handlers.approve_model(gov, ApproveModel("card-fraud-gbdt", "1.0.0", "alice"))
    store: FakeEventStore = gov.events  # type: ignore[assignment]
    # Another instance registers a version between our read and our append.
    store.before_append = lambda: store.stream.append(("card-fraud-gbdt", registered("2.0.0")))
    with pytest.raises(ConcurrentChange, match="concurrent change to model card-fraud-gbdt, retry"):
        await handlers.deploy_model(gov, deploy_cmd())
    assert gov.model_server.loaded == {}  # type: ignore[attr-defined]
    assert [v.version for v in await handlers.list_models(gov, "card-fraud-gbdt")] == ["1.0.0", "2.0.0"]


async def test_concurrent_approvals_in_one_process_are_serialized(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd())
    results = await asyncio.gather(
        *(handlers.approve_model(gov, ApproveModel("card-fraud-gbdt", "1.0.0", who)) for who in ("alice", "bob")),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InvalidTransition) for r in results) == 1
    assert sum(type(e).__name__ == "ModelApproved" for _, e in gov.events.stream) == 1  # type: ignore[attr-defined]


async def test_rebuild_gives_the_same_rows(gov: handlers.Governance) -> None:
    await handlers.register_model(gov, register_cmd())
    await handlers.approve_model(gov, ApproveModel("card-fraud-gbdt", "1.0.0", "alice"))
    before = await handlers.list_models(gov)
    assert await handlers.rebuild(gov) == 2
    assert await handlers.list_models(gov) == before


# --- artifact store and ONNX check (pure filesystem / in-memory, no servers) --------------------------


def test_artifact_store_is_content_addressed_and_detects_corruption(tmp_path: Path) -> None:
    from services.governance.adapters.artifacts import ArtifactCorrupt, ArtifactNotFound, ArtifactStore

    store = ArtifactStore(tmp_path)
    sha = store.put(b"model")
    assert store.put(b"model") == sha and store.get(sha) == b"model"
    with pytest.raises(ArtifactNotFound):
        store.get("0" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        store.path("../etc/passwd")
    path = store.path(sha)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupt, match="corrupt"):
        store.get(sha)


def tiny_onnx(input_name: str = "features", width: int | None = 3, output_name: str = "probability") -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], [output_name], axes=[1], keepdims=1)],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [None, 1])],
    )
    graph.input[0].name = input_name
    graph.node[0].input[0] = input_name
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def test_onnx_check_accepts_the_contract_and_names_what_is_wrong() -> None:
    from services.governance.adapters.onnx_check import check_onnx

    assert check_onnx(tiny_onnx(), FEATURES).n_features == 3
    assert check_onnx(tiny_onnx(width=None), FEATURES).input_name == "features"
    for data, message in (
        (b"\x00garbage", "onnx_model"),
        (tiny_onnx(width=4), "takes 4 features but 3"),
        (tiny_onnx(input_name="x"), "exactly one input 'features'"),
        (tiny_onnx(output_name="score"), "no output 'probability'"),
    ):
        with pytest.raises(InvalidArtifact, match=message):
            check_onnx(data, FEATURES)
