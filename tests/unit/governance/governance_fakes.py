"""Small in-memory fakes of the governance ports (no NATS, no Triton), and helpers shared by the use case tests."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import select

from fraud.events.v1 import transaction_events_pb2 as tx_events
from services.governance.adapters import registry_tables
from services.governance.domain.commands import ApproveModel, DeployModel, RegisterModel, Role
from services.governance.domain.errors import ConcurrentChange, InvalidArtifact, UnknownArtifact
from services.governance.service_layer import handlers
from services.governance.service_layer.ports import History

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NAME = "card-fraud-gbdt"
FEATURES = ("amount", "card_tx_count_1d", "terminal_risk_7d")


def register_cmd(version: str = "1.0.0", **changes: object) -> RegisterModel:
    fields: dict[str, object] = {
        "model_name": NAME,
        "version": version,
        "onnx_model": b"onnx-bytes-" + version.encode(),
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "fs-1",
        "feature_names": FEATURES,
        "review_threshold": 0.5,
        "decline_threshold": 0.9,
        "registered_by": "trainer",
        "metrics": {"auc_roc": 0.91},
        "explainer_model": b"explainer-" + version.encode(),
    }
    fields.update(changes)
    return RegisterModel(**fields)  # type: ignore[arg-type]


class FakeEventStore:
    """In-memory ModelEventLog: one list of (subject, event), sequences = positions + 1."""

    def __init__(self) -> None:
        self.stream: list[tuple[str, Message]] = []
        self.before_append: Callable[[], None] | None = None

    async def load(self, model_name: str) -> History:
        return [(e, i + 1) for i, (s, e) in enumerate(self.stream) if s == model_name]

    def last_on(self, model_name: str) -> int:
        return max((i + 1 for i, (s, _) in enumerate(self.stream) if s == model_name), default=0)

    async def append(self, event: Message, *, expected_last_seq: int | None) -> int:
        if self.before_append is not None:
            hook, self.before_append = self.before_append, None
            hook()
        name = event.model_name
        if expected_last_seq is not None and self.last_on(name) != expected_last_seq:
            raise ConcurrentChange(f"expected {expected_last_seq}, found {self.last_on(name)}")
        self.stream.append((name, event))
        return len(self.stream)

    async def read_all(self, after_seq: int) -> AsyncIterator[tuple[Message, int]]:
        for i, (_, event) in enumerate(self.stream[after_seq:], start=after_seq + 1):
            yield event, i

    async def last_seq(self) -> int:
        return len(self.stream)

    def types(self) -> list[str]:
        return [type(e).__name__ for _, e in self.stream]


class FakeArtifacts:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return sha

    def get(self, sha256: str) -> bytes:
        if sha256 not in self.blobs:
            raise UnknownArtifact(f"no artifact {sha256}")
        return self.blobs[sha256]


class FakeModelServer:
    def __init__(self) -> None:
        self.loaded: dict[str, int] = {}
        self.fail_with: Exception | None = None
        self.calls: list[str] = []

    async def deploy(self, serving_name: str, onnx_model: bytes, n_features: int) -> None:
        self.calls.append(f"deploy {serving_name}")
        self.loaded[serving_name] = n_features  # a failure below leaves it half-loaded: the use case must undo
        if self.fail_with is not None:
            raise self.fail_with

    async def undeploy(self, serving_name: str) -> None:
        self.calls.append(f"undeploy {serving_name}")
        self.loaded.pop(serving_name, None)

    async def is_serving(self, serving_name: str) -> bool:
        return serving_name in self.loaded


class FakeDecisionLog:
    def __init__(self) -> None:
        self.predictions: dict[str, tuple[tx_events.PredictionMade, int]] = {}

    async def prediction(self, transaction_id: str) -> tuple[tx_events.PredictionMade, int] | None:
        return self.predictions.get(transaction_id)


def fake_validate(onnx_model: bytes, explainer_model: bytes, feature_names: Sequence[str]) -> dict[str, str]:
    if onnx_model.startswith(b"corrupt"):
        raise InvalidArtifact("onnx_model is not a readable ONNX file")
    return {"onnx_checker": "passed", "explainer": "fake" if explainer_model else "none uploaded"}


class Clock:
    """A minute passes at every reading, so every event has its own time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def store(gov: handlers.Governance) -> FakeEventStore:
    return gov.events  # type: ignore[return-value]


def server(gov: handlers.Governance) -> FakeModelServer:
    return gov.model_server  # type: ignore[return-value]


async def approve_twice(gov: handlers.Governance, version: str) -> None:
    for approver in ("risk-officer", "model-validator"):
        await handlers.approve_model(gov, ApproveModel(NAME, version, approver))


async def ready(gov: handlers.Governance, version: str, role: Role = Role.CHAMPION, percent: int = 0) -> None:
    await handlers.register_model(gov, register_cmd(version))
    await approve_twice(gov, version)
    await handlers.deploy_model(gov, DeployModel(NAME, version, role, "ops", percent))


def snapshot(registry: Any) -> dict[str, list[Any]]:
    tables = [*registry_tables.PROJECTED, registry_tables.projection_position]
    with registry.engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in tables}
