"""Governance domain: the aggregate's fold and the pure decisions (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from services.governance.domain import decisions
from services.governance.domain import events as ev
from services.governance.domain.commands import (
    ApproveModel,
    DeployModel,
    PromoteModel,
    RegisterModel,
    Role,
    RollbackModel,
)
from services.governance.domain.errors import DuplicateVersion, InvalidCommand, InvalidTransition, UnknownVersion
from services.governance.domain.model import Model, Stage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NAME = "card-fraud-gbdt"
FEATURES = ("amount", "card_tx_count_1d", "terminal_risk_7d")
SHA = "ab" * 32


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
    }
    fields.update(changes)
    return RegisterModel(**fields)  # type: ignore[arg-type]


class History:
    """Builds a model's subject event by event, deciding each step on the folded aggregate."""

    def __init__(self) -> None:
        self.model = Model(NAME)
        self.events: list[Message] = []

    def add(self, *events: Message) -> History:
        for event in events:
            self.events.append(event)
            self.model.apply(event, len(self.events))
        return self

    def register(self, version: str = "1.0.0", validate: bool = True) -> History:
        self.add(decisions.decide_register(self.model, register_cmd(version), SHA, "", NOW))
        if validate:
            self.add(decisions.decide_validate(self.model, version, {"onnx_checker": "passed"}, NOW))
        return self

    def approve(self, version: str = "1.0.0", *approvers: str) -> History:
        for approver in approvers or ("alice", "bob"):
            self.add(decisions.decide_approve(self.model, ApproveModel(NAME, version, approver), NOW))
        return self

    def deploy(self, version: str, role: Role = Role.CHAMPION, percent: int = 0) -> History:
        return self.add(
            *decisions.decide_deploy(self.model, DeployModel(NAME, version, role, "ops", percent), NOW).events
        )

    def ready(self, version: str, role: Role = Role.CHAMPION, percent: int = 0) -> History:
        return self.register(version).approve(version).deploy(version, role, percent)


def types(events: tuple[Message, ...] | list[Message]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- registration and validation ------------------------------------------------------------------------


def test_register_records_the_lineage() -> None:
    profile = ev.ReferenceProfile(rows=10)
    profile.histograms.add(feature="amount", bin_edges=[0.0, 1.0], frequencies=[1.0])
    command = register_cmd(reference_profile=profile, data_split={"train": "2026-01-01/2026-01-21"})
    event = decisions.decide_register(Model(NAME), command, SHA, "ef" * 32, NOW)
    assert (event.model_name, event.version, event.artifact_sha256) == (NAME, "1.0.0", SHA)
    assert event.explainer_artifact_sha256 == "ef" * 32 and event.reference_profile == profile
    assert dict(event.data_split) == {"train": "2026-01-01/2026-01-21"}
    assert list(event.feature_names) == list(FEATURES)
    assert (event.thresholds.review, event.thresholds.decline) == (0.5, 0.9)
    assert event.registered_at.ToDatetime(UTC) == NOW
    assert History().add(event).model.get("1.0.0").stage is Stage.REGISTERED


@pytest.mark.parametrize(
    "changes",
    [
        {"version": "1.0"},
        {"review_threshold": 0.95},
        {"decline_threshold": 1.1},
        {"review_threshold": float("nan")},
        {"feature_names": ("a", "a")},
        {"model_name": "other"},
    ],
)
def test_register_rejects_bad_commands(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidCommand):
        decisions.decide_register(Model(NAME), register_cmd(**changes), SHA, "", NOW)  # type: ignore[arg-type]


def test_a_never_firing_threshold_just_above_one_is_sane() -> None:
    checks = decisions.registration_checks(register_cmd(review_threshold=0.5, decline_threshold=1.0000001))
    assert set(checks) == {"thresholds", "feature_names"}


def test_register_twice_is_duplicate() -> None:
    with pytest.raises(DuplicateVersion, match="already registered"):
        decisions.decide_register(History().register().model, register_cmd(), SHA, "", NOW)


def test_validation_moves_registered_to_validated_once() -> None:
    history = History().register()
    assert history.model.get("1.0.0").stage is Stage.VALIDATED
    with pytest.raises(InvalidTransition, match="only a registered version can be validated"):
        decisions.decide_validate(history.model, "1.0.0", {}, NOW)


# --- four eyes ------------------------------------------------------------------------------------------


def test_two_distinct_approvers_neither_the_registrant_approve() -> None:
    history = History().register().approve("1.0.0", "alice")
    assert history.model.get("1.0.0").stage is Stage.VALIDATED
    history.approve("1.0.0", "bob")
    version = history.model.get("1.0.0")
    assert version.stage is Stage.APPROVED and [a.approver for a in version.approvals] == ["alice", "bob"]


@pytest.mark.parametrize(
    ("history", "approver", "message"),
    [
        (lambda: History().register(), "trainer", "four eyes: trainer registered"),
        (lambda: History().register(validate=False), "alice", "not validated yet"),
        (lambda: History().register().approve("1.0.0", "alice"), "alice", "alice has already approved .* counts once"),
        (lambda: History().register().approve(), "bob", "bob has already approved .* counts once"),
        (lambda: History().register().approve(), "carol", "is approved .approved by alice, bob."),
        (lambda: History().ready("1.0.0").ready("1.1.0"), "carol", "is retired"),
    ],
)
def test_approval_refusals(history: object, approver: str, message: str) -> None:
    model = history().model  # type: ignore[operator]
    with pytest.raises(InvalidTransition, match=message):
        decisions.decide_approve(model, ApproveModel(NAME, "1.0.0", approver), NOW)


def test_approve_unknown_version() -> None:
    with pytest.raises(UnknownVersion):
        decisions.decide_approve(History().register().model, ApproveModel(NAME, "9.9.9", "alice"), NOW)


# --- deployment -----------------------------------------------------------------------------------------


def test_deploy_needs_two_approvals() -> None:
    model = History().register().approve("1.0.0", "alice").model
    with pytest.raises(InvalidTransition, match=r"only an approved version can be deployed \(needs 2 approvals\)"):
        decisions.decide_deploy(model, DeployModel(NAME, "1.0.0", Role.CHAMPION, "ops"), NOW)


def test_a_canary_or_shadow_needs_a_champion() -> None:
    model = History().register().approve().model
    with pytest.raises(InvalidTransition, match="no champion"):
        decisions.check_deploy(model, DeployModel(NAME, "1.0.0", Role.SHADOW, "ops"))


@pytest.mark.parametrize(("role", "percent"), [(Role.CANARY, 0), (Role.CANARY, 101), (Role.SHADOW, 10)])
def test_canary_percent_must_fit_the_role(role: Role, percent: int) -> None:
    model = History().ready("1.0.0").register("1.1.0").approve("1.1.0").model
    with pytest.raises(InvalidCommand, match="canary"):
        decisions.check_deploy(model, DeployModel(NAME, "1.1.0", role, "ops", percent))


def test_first_champion_then_a_new_champion_retires_and_unloads_the_old_one() -> None:
    history = History().ready("1.0.0").register("1.1.0").approve("1.1.0")
    assert history.model.serving(Role.CHAMPION) is history.model.get("1.0.0")
    outcome = decisions.decide_deploy(history.model, DeployModel(NAME, "1.1.0", Role.CHAMPION, "ops"), NOW)
    assert types(outcome.events) == ["ModelDeployed", "ModelRetired"]
    assert outcome.events[1].reason == "replaced by 1.1.0 as champion"  # type: ignore[attr-defined]
    assert outcome.unload == (f"{NAME}-1-0-0",)
    history.add(*outcome.events)
    assert history.model.get("1.0.0").stage is Stage.RETIRED and history.model.get("1.0.0").role is None
    assert history.model.champions == ["1.0.0", "1.1.0"]


def test_a_new_canary_replaces_the_old_canary() -> None:
    history = History().ready("1.0.0").ready("1.1.0", Role.CANARY, 10).register("1.2.0").approve("1.2.0")
    outcome = decisions.decide_deploy(history.model, DeployModel(NAME, "1.2.0", Role.CANARY, "ops", 20), NOW)
    assert types(outcome.events) == ["ModelDeployed", "ModelRetired"] and outcome.unload == (f"{NAME}-1-1-0",)
    history.add(*outcome.events)
    assert history.model.serving(Role.CANARY) is history.model.get("1.2.0")
    assert history.model.get("1.2.0").canary_percent == 20
    assert history.model.serving(Role.CHAMPION) is history.model.get("1.0.0")


# --- promotion and rollback -----------------------------------------------------------------------------


def test_promote_a_canary_retires_the_champion() -> None:
    history = History().ready("1.0.0").ready("1.1.0", Role.CANARY, 10)
    outcome = decisions.decide_promote(history.model, PromoteModel(NAME, "1.1.0", "owner", "better AP"), NOW)
    assert types(outcome.events) == ["ModelPromoted", "ModelRetired"]
    promoted, retired = outcome.events
    assert (promoted.version, promoted.previous_version) == ("1.1.0", "1.0.0")  # type: ignore[attr-defined]
    assert retired.version == "1.0.0" and retired.retired_by == "owner"  # type: ignore[attr-defined]
    assert outcome.unload == (f"{NAME}-1-0-0",)
    history.add(*outcome.events)
    new = history.model.get("1.1.0")
    assert (new.stage, new.role, new.canary_percent) == (Stage.DEPLOYED, Role.CHAMPION, 0)
    assert history.model.serving(Role.CANARY) is None
    assert history.model.champions == ["1.0.0", "1.1.0"]


@pytest.mark.parametrize(("version", "message"), [("1.0.0", "already the champion"), ("1.2.0", "approved")])
def test_only_a_deployed_canary_or_shadow_can_be_promoted(version: str, message: str) -> None:
    model = History().ready("1.0.0").register("1.2.0").approve("1.2.0").model
    with pytest.raises(InvalidTransition, match=message):
        decisions.decide_promote(model, PromoteModel(NAME, version, "owner"), NOW)


def test_rollback_restores_the_previous_champion_and_retires_the_current_one() -> None:
    history = History().ready("1.0.0").ready("1.1.0", Role.SHADOW)
    history.add(*decisions.decide_promote(history.model, PromoteModel(NAME, "1.1.0", "owner"), NOW).events)
    outcome = decisions.decide_rollback(history.model, RollbackModel(NAME, "oncall", "AP dropped"), NOW)
    assert types(outcome.events) == ["ModelRolledBack", "ModelRetired"]
    rolled_back, retired = outcome.events
    assert (rolled_back.from_version, rolled_back.to_version) == ("1.1.0", "1.0.0")  # type: ignore[attr-defined]
    assert retired.version == "1.1.0" and retired.reason == "rolled back to 1.0.0"  # type: ignore[attr-defined]
    assert outcome.unload == (f"{NAME}-1-1-0",)
    history.add(*outcome.events)
    assert history.model.serving(Role.CHAMPION) is history.model.get("1.0.0")
    assert history.model.get("1.1.0").stage is Stage.RETIRED
    with pytest.raises(InvalidTransition, match="first champion"):  # the succession was popped: nothing older
        decisions.decide_rollback(history.model, RollbackModel(NAME, "oncall"), NOW)


def test_rollback_without_a_champion_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="no champion"):
        decisions.decide_rollback(History().register().model, RollbackModel(NAME, "oncall"), NOW)


# --- event identity -------------------------------------------------------------------------------------


def test_business_ids_are_printable_and_distinct() -> None:
    history = History().ready("1.0.0").ready("1.1.0", Role.CANARY, 5)
    history.add(*decisions.decide_promote(history.model, PromoteModel(NAME, "1.1.0", "o"), NOW).events)
    history.add(*decisions.decide_rollback(history.model, RollbackModel(NAME, "o"), NOW).events)
    history.add(decisions.decide_approve(History().register().model, ApproveModel(NAME, "1.0.0", "Alice Smith"), NOW))
    ids = [ev.business_id(e) for e in history.events]
    assert len(set(ids)) == len(ids) == 15
    assert all(" " not in i and i.isascii() for i in ids)


def test_decode_round_trip_and_unknown_type() -> None:
    for event in History().ready("1.0.0").events:
        assert ev.decode(event.DESCRIPTOR.full_name, event.SerializeToString()) == event
    with pytest.raises(ev.UnknownEventType):
        ev.decode("fraud.events.v1.Nope", b"")
