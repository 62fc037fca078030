"""Four eyes between principals (issue 13): the domain compares the principal ids the service layer gives it."""

from __future__ import annotations

import pytest

from services.governance.domain import decisions
from services.governance.domain.commands import ApproveModel, DeployModel, RegisterModel, Role
from services.governance.domain.errors import InvalidTransition
from services.governance.domain.model import Model, Stage
from tests.unit.test_governance_domain import NAME, NOW, SHA, register_cmd

OWNER, APPROVER, APPROVER_2 = "user:dev-model-owner", "user:dev-approver", "user:dev-approver-2"


def registered(by: str = OWNER) -> Model:
    model = Model(NAME)
    command: RegisterModel = register_cmd(registered_by=by)
    model.apply(decisions.decide_register(model, command, SHA, "", NOW), 1)
    model.apply(decisions.decide_validate(model, "1.0.0", {"onnx_checker": "passed"}, NOW), 2)
    return model


def approve(model: Model, approver: str) -> None:
    model.apply(decisions.decide_approve(model, ApproveModel(NAME, "1.0.0", approver), NOW), model.last_seq + 1)


def test_the_registrant_cannot_approve_its_own_version() -> None:
    model = registered()
    with pytest.raises(InvalidTransition, match=f"four eyes: {OWNER} registered {NAME}@1.0.0 and cannot approve it"):
        approve(model, OWNER)
    assert model.get("1.0.0").approvals == []


def test_one_approver_twice_counts_once() -> None:
    model = registered()
    approve(model, APPROVER)
    with pytest.raises(InvalidTransition, match=f"{APPROVER} has already approved {NAME}@1.0.0"):
        approve(model, APPROVER)
    version = model.get("1.0.0")
    assert version.stage is Stage.VALIDATED and [a.approver for a in version.approvals] == [APPROVER]


def test_two_distinct_approvers_approve() -> None:
    model = registered()
    approve(model, APPROVER)
    approve(model, APPROVER_2)
    version = model.get("1.0.0")
    assert version.stage is Stage.APPROVED and [a.approver for a in version.approvals] == [APPROVER, APPROVER_2]


def test_a_user_and_a_service_of_the_same_name_are_two_principals() -> None:
    model = registered(by="service:monitor")
    approve(model, "user:monitor")  # not the registrant: another principal that happens to share the name
    assert [a.approver for a in model.get("1.0.0").approvals] == ["user:monitor"]


@pytest.mark.parametrize("approvers", [(), (APPROVER,)])
def test_deploy_without_two_approvals_is_refused(approvers: tuple[str, ...]) -> None:
    model = registered()
    for approver in approvers:
        approve(model, approver)
    with pytest.raises(InvalidTransition, match=r"only an approved version can be deployed \(needs 2 approvals\)"):
        decisions.decide_deploy(model, DeployModel(NAME, "1.0.0", Role.CHAMPION, "user:dev-model-owner"), NOW)


def test_events_record_the_principals() -> None:
    model = registered()
    approve(model, APPROVER)
    approve(model, APPROVER_2)
    deployed = decisions.decide_deploy(model, DeployModel(NAME, "1.0.0", Role.CHAMPION, OWNER), NOW).events[0]
    assert (model.get("1.0.0").registered_by, deployed.deployed_by) == (OWNER, OWNER)
