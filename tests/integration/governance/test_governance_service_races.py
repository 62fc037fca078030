"""Governance over real gRPC and real servers: two instances racing, and one whose Triton is down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from nats.js import JetStreamContext

from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraudshared.nats_server import find_free_port
from services.governance.adapters.triton_repository import TritonModelControl
from services.governance.service_layer import handlers
from tests.integration.governance.governance_support import (
    CANARY,
    CHAMPION,
    SHADOW,
    Artifacts,
    approve,
    deploy_request,
    governance,
    model_name,
    ready,
    ready_models,
    register_request,
    subject_event_types,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_two_owners_promoting_at_once_one_wins_the_other_is_aborted(
    env_for: Callable[..., dict[str, str]], artifacts: Artifacts, triton: TritonModelControl, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("race-a")) as a, governance(env_for("race-b")) as b:
        await ready(a, name, artifacts, "1.0.0", CHAMPION)
        await ready(a, name, artifacts, "1.1.0", CANARY, 10)
        await ready(b, name, artifacts, "1.2.0", SHADOW)
        # Both instances decide on the same subject state, then both append: a real race, every time.
        both_decided = asyncio.Barrier(2)
        for instance in (a, b):
            _gate_promotions(instance.gov, both_decided)
        outcomes = await asyncio.gather(
            a.stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.1.0")),
            b.stub.PromoteModel(pb.PromoteModelRequest(model_name=name, version="1.2.0")),
            return_exceptions=True,
        )
        failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(failed) == 1 and failed[0].code() == grpc.StatusCode.ABORTED, outcomes
        assert "concurrent change" in (failed[0].details() or "")
        winner = next(o for o in outcomes if not isinstance(o, BaseException)).model.version
        loser = "1.2.0" if winner == "1.1.0" else "1.1.0"
        for instance in (a, b):  # both registries agree, whichever wrote
            listed = (await instance.stub.ListModels(pb.ListModelsRequest(model_name=name))).models
            roles = {m.version: (m.stage, m.role) for m in listed}
            assert roles["1.0.0"] == (pb.MODEL_STAGE_RETIRED, 0)
            assert roles[winner] == (pb.MODEL_STAGE_DEPLOYED, CHAMPION)
            assert roles[loser][0] == pb.MODEL_STAGE_DEPLOYED and roles[loser][1] in (CANARY, SHADOW)
    types = await subject_event_types(js, name)
    assert types.count("ModelPromoted") == 1 and types[-2:] == ["ModelPromoted", "ModelRetired"]
    assert ready_models(triton, name, ["1.0.0", winner, loser]) == {"1.0.0": False, winner: True, loser: True}


def _gate_promotions(gov: handlers.Governance, barrier: asyncio.Barrier) -> None:
    original = gov.events.append

    async def append(event: Any, *, expected_last_seq: int | None) -> int:
        if isinstance(event, events_pb.ModelPromoted):
            await asyncio.wait_for(barrier.wait(), timeout=10.0)
        return await original(event, expected_last_seq=expected_last_seq)

    gov.events.append = append  # type: ignore[method-assign]


async def test_racing_deploys_of_one_version_append_once_and_keep_it_loaded(
    env_for: Callable[..., dict[str, str]], artifacts: Artifacts, triton: TritonModelControl, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("deploy-a")) as a, governance(env_for("deploy-b")) as b:
        await a.stub.RegisterModel(register_request(name, artifacts))
        await approve(a, name, "1.0.0")
        deploys = await asyncio.gather(
            a.stub.DeployModel(deploy_request(name)), b.stub.DeployModel(deploy_request(name)), return_exceptions=True
        )
        failed = [o for o in deploys if isinstance(o, grpc.aio.AioRpcError)]
        assert len(failed) == 1 and failed[0].code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)
        for client in (a.stub, b.stub):
            listed = (await client.ListModels(pb.ListModelsRequest(model_name=name))).models
            assert [m.stage for m in listed] == [pb.MODEL_STAGE_DEPLOYED]
    assert (await subject_event_types(js, name))[-1] == "ModelDeployed"
    assert (await subject_event_types(js, name)).count("ModelDeployed") == 1
    assert triton.is_ready(f"{name}-1-0-0")


async def test_deploy_with_triton_down_is_unavailable_and_changes_nothing(
    env_for: Callable[..., dict[str, str]], artifacts: Artifacts, triton_server: object, js: JetStreamContext
) -> None:
    name = model_name()
    async with governance(env_for("down", triton_grpc_url=f"127.0.0.1:{find_free_port()}")) as down:
        await down.stub.RegisterModel(register_request(name, artifacts))
        await approve(down, name, "1.0.0")
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await down.stub.DeployModel(deploy_request(name))
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
        listed = (await down.stub.ListModels(pb.ListModelsRequest(model_name=name))).models
        assert [m.stage for m in listed] == [pb.MODEL_STAGE_APPROVED]
    assert not (triton_server.repo_dir / f"{name}-1-0-0").exists()  # type: ignore[attr-defined]
    assert (await subject_event_types(js, name))[-1] == "ModelApproved"
