"""``fraudctl model ...`` through typer's CliRunner against an in-process governance service (real NATS, Triton).

Every command calls as a development principal of the test CA (FRAUD_CREDENTIAL, or ``fraudctl --as NAME``
with a var dir's credentials): the model-owner registers and deploys, two approvers sign off, and the
registry records those principals, never a name typed on the command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from typer.testing import CliRunner

from fraud.common.v1 import decision_pb2
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudctl.cli import app
from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.nats_server import NatsServer
from fraudshared.service import start_in_process
from services.governance.adapters.event_log import JetStreamModelEvents
from services.governance.bootstrap import bootstrap
from tests.fixtures.identity import grant_dev_roles, session_pki

pytestmark = pytest.mark.integration
FEATURES = ["amount", "card_tx_count_1d", "terminal_risk_7d"]


@pytest.fixture(scope="module")
def training_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models/<dir> as `fraudctl train` writes it: model.onnx, explainer.txt, metadata.json."""
    lightgbm = pytest.importorskip("lightgbm")
    from fraudml.onnx_export import to_onnx

    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 1.0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    run = tmp_path_factory.mktemp("models") / "card-fraud-gbdt-run"
    run.mkdir()
    (run / "model.onnx").write_bytes(to_onnx(model, len(FEATURES)))
    (run / "explainer.txt").write_text(model.booster_.model_to_string())
    metadata = {
        "model_name": "placeholder",
        "version": "1.0.0",
        "dataset_sha256": "cd" * 32,
        "feature_set_version": "card-v1",
        "feature_names": FEATURES,
        "params": {"n_estimators": 5, "num_leaves": 4},
        "metrics": {"auc_roc": 0.91, "average_precision": 0.7, "rows_test": 100, "note": "not a number"},
        "thresholds": {"review": 0.5, "decline": 0.9},
        "code_revision": "abc123",
        "data_split": {"train": "2026-01-01/2026-01-21", "test": "2026-01-29/2026-02-04"},
        "reference_profile": {
            "histograms": [{"feature": "amount", "bin_edges": [0, 10, 100], "frequencies": [0.8, 0.2]}],
            "rows": 300,
        },
        "baseline_metrics": {"auc_roc": 0.85, "average_precision": 0.6},
        "pr_curve": {"precision": [0.2, 0.6, 1.0], "recall": [1.0, 0.5, 0.0]},
        "feature_importance": {"amount": 10.0, "card_tx_count_1d": 2.0, "terminal_risk_7d": 1.0},
    }
    (run / "metadata.json").write_text(json.dumps(metadata))
    return run


@pytest_asyncio.fixture(loop_scope="session")
async def governance_address(
    nats_server: NatsServer, triton_server: object, tmp_path: Path, js: JetStreamContext
) -> AsyncIterator[str]:
    await grant_dev_roles(js)  # as `fraudctl up` does on first start
    saved = dict(os.environ)
    os.environ.update(
        {
            "FRAUD_NATS_URL": nats_server.url,
            "FRAUD_VAR_DIR": str(tmp_path / "var"),
            "FRAUD_GOVERNANCE_GRPC_PORT": "0",
            "FRAUD_TRITON_GRPC_URL": triton_server.grpc_url,  # type: ignore[attr-defined]
            "FRAUD_TRITON_MODEL_REPO": str(triton_server.repo_dir),  # type: ignore[attr-defined]
        }
    )
    service = await start_in_process("governance", bootstrap, timeout=60.0)
    try:
        yield service.address
    finally:
        await service.stop()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


class Cli:
    """Runs `fraudctl model ...` in a worker thread (the service runs on this test's event loop)."""

    def __init__(self, runner: CliRunner, address: str) -> None:
        self.runner, self.address = runner, address

    async def __call__(self, *args: str, ok: bool = True, who: str = "dev-model-owner") -> tuple[str, str]:
        argv = ["model", *args, "--governance", self.address]
        env = {"COLUMNS": "200", "FRAUD_CREDENTIAL": str(session_pki().files(who).cert.parent)}
        result = await asyncio.to_thread(self.runner.invoke, app, argv, env=env)
        assert (result.exit_code == 0) is ok, (argv, result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.stdout + result.stderr
        return result.stdout, result.stderr


@pytest.mark.asyncio(loop_scope="session")
async def test_model_commands_from_register_to_rollback(
    runner: CliRunner, governance_address: str, training_run: Path, js: JetStreamContext
) -> None:
    cli = Cli(runner, governance_address)
    name = f"cli-fraud-{uuid.uuid4().hex[:6]}"
    stdout, _ = await cli("register", "--from", str(training_run), "--name", name)
    assert f"registered {name} 1.0.0" in stdout and "validated" in stdout and "lightgbm booster" in stdout
    assert "by user:dev-model-owner" in stdout  # the registrant is the caller

    _, stderr = await cli("approve", name, "1.0.0", ok=False)  # the model-owner holds no approver role
    assert stderr.strip().startswith("error: PERMISSION_DENIED: user:dev-model-owner may not call ApproveModel")
    assert len(stderr.strip().splitlines()) == 1
    _, stderr = await cli("approve", name, "1.0.0", "--approver", "someone-else", ok=False)
    assert "the actor is the authenticated caller" in stderr  # an old actor option is refused, not ignored
    stdout, _ = await cli("approve", name, "1.0.0", who="dev-approver")
    assert "validated, approved by user:dev-approver" in stdout
    _, stderr = await cli("approve", name, "1.0.0", who="dev-approver", ok=False)
    assert stderr.startswith("error: FAILED_PRECONDITION") and "already approved" in stderr  # counts once
    stdout, _ = await cli("approve", name, "1.0.0", "--comment", "PR curve ok", who="dev-approver-2")
    assert "approved, approved by user:dev-approver, user:dev-approver-2" in stdout

    stdout, _ = await cli("deploy", name, "1.0.0", "--role", "champion")
    assert f"serves as champion in Triton ({name}-1-0-0)" in stdout and "registered -> serving" in stdout
    print("\n" + stdout.strip())
    v1_live = datetime.now(UTC)

    await cli("register", "--from", str(training_run), "--name", name, "--version", "1.1.0")
    for approver in ("dev-approver", "dev-approver-2"):
        await cli("approve", name, "1.1.0", who=approver)
    _, stderr = await cli("deploy", name, "1.1.0", "--role", "canary", ok=False)
    assert "INVALID_ARGUMENT: a canary needs canary_percent between 1 and 100" in stderr
    await cli("deploy", name, "1.1.0", "--role", "canary", "--canary-percent", "25")
    stdout, _ = await cli("list", name)
    assert "canary 25%" in stdout and "0.910" in stdout

    stdout, _ = await cli("promote", name, "1.1.0", "--reason", "better AP")
    assert f"{name} 1.1.0 is the champion" in stdout
    v2_live = datetime.now(UTC)
    stdout, _ = await cli("rollback", name, "--reason", "AP dropped")
    assert "1.0.0 is the champion again" in stdout

    stdout, _ = await cli("live-at", name, v1_live.isoformat())
    assert "champion 1.0.0" in stdout
    stdout, _ = await cli("live-at", name, v2_live.isoformat().replace("+00:00", "Z"))
    assert "champion 1.1.0" in stdout
    stdout, _ = await cli("live-at", name, "2000-01-01T00:00:00")
    assert "no champion" in stdout
    _, stderr = await cli("live-at", name, "yesterday", ok=False)
    assert "not an ISO 8601 time" in stderr

    stdout, _ = await cli("show", name, "1.1.0")
    for expected in ("retired", "abc123", "split train", "2026-01-01/2026-01-21", "promoted", "rolled back to 1.0.0"):
        assert expected in stdout, expected
    assert "reference profile: 1 histograms over 300 rows" in stdout
    _, stderr = await cli("show", name, "9.9.9", ok=False)
    assert stderr.startswith("error: NOT_FOUND:")

    transaction_id = await record_prediction(js, name)
    stdout, _ = await cli("decided", transaction_id)
    assert f"{name} 1.0.0 (champion)" in stdout and "artifact matches" in stdout and "DECLINE" in stdout

    out_html = training_run.parent / "card.html"
    stdout, _ = await cli("card", name, "1.0.0", "--out", str(out_html), "--from", str(training_run))
    assert f"written to {out_html}" in stdout.replace("\n", "")
    card = out_html.read_text()
    assert card.startswith("<!DOCTYPE html>") and "user:dev-approver-2" in card and "data:image/png;base64" in card
    assert "random forest" in card and "rolled_back" in card and "AP dropped" in card


async def record_prediction(js: JetStreamContext, name: str) -> str:
    """Appends a PredictionMade for a new transaction decided by ``name`` 1.0.0 (what scoring would write)."""
    transaction_id = f"tx-{uuid.uuid4().hex[:12]}"
    history = await JetStreamModelEvents(EventStore(js), js).load(name)
    sha = next(e.artifact_sha256 for e, _ in history if type(e).__name__ == "ModelRegistered" and e.version == "1.0.0")
    prediction = tx_events.PredictionMade(
        schema_version=1,
        transaction_id=transaction_id,
        card_token="tok-cli",
        model=decision_pb2.ModelRef(name=name, version="1.0.0", artifact_sha256=sha),
        score=0.97,
        decision=decision_pb2.DECISION_DECLINE,
        role=1,
        scoring_path=decision_pb2.SCORING_PATH_TRITON,
    )
    prediction.decided_at.FromDatetime(datetime.now(UTC))
    envelope = new_envelope(
        prediction,
        source="/fraud/scoring",
        subject=transaction_id,
        event_id=event_id("PredictionMade", transaction_id),
        time=datetime.now(UTC),
        schema_version=1,
    )
    await EventStore(js).append(envelope, subject=subjects.prediction_made("tok-cli", transaction_id))
    return transaction_id


@pytest.mark.asyncio(loop_scope="session")
async def test_as_names_a_credential_of_the_var_dir_and_a_missing_one_says_what_to_do(
    runner: CliRunner, governance_address: str, tmp_path: Path
) -> None:
    var = tmp_path / "cli-var"
    auditor = session_pki().files("dev-auditor")
    (var / "credentials").mkdir(parents=True)
    shutil.copytree(auditor.cert.parent, var / "credentials" / "auditor")
    argv = ["--as", "auditor", "model", "list", "--governance", governance_address, "--var-dir", str(var)]
    env = {"COLUMNS": "200", "FRAUD_CREDENTIAL": None, "FRAUD_TOKEN_FILE": None}
    result = await asyncio.to_thread(runner.invoke, app, argv, env=env)
    assert result.exit_code == 0, result.stderr
    argv[1] = "approver"
    result = await asyncio.to_thread(runner.invoke, app, argv, env=env)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: no credential named 'approver' in {var / 'credentials'} (have: auditor)"
    result = await asyncio.to_thread(runner.invoke, app, argv[2:], env=env)
    assert result.exit_code == 1 and "no credential: pass --as <name>" in result.stderr


def test_without_a_runtime_or_address_the_error_says_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["model", "list", "--var-dir", str(tmp_path)], env={"FRAUD_GOVERNANCE_ADDR": None})
    assert result.exit_code == 1
    assert "no running platform under" in result.stderr and "fraudctl up" in result.stderr


def test_training_run_metadata_is_read_defensively() -> None:
    from fraudctl.model_cli import ModelCliError, register_request

    metadata = {
        "name": "m",
        "model_version": "2.0.0",
        "thresholds": {"review": 0.5, "decline": 1.0000001},
        "metrics": {"auc_roc": 0.9, "parity_rows": 10, "broken": None, "flag": True},
        "params": {"n_estimators": 100},
        "split": {"train": {"start": "a", "end": "b"}, "test": ["c", "d"]},
        "reference_profile": {"amount": {"bin_edges": [0, 1], "frequencies": [1.0]}, "rows": 5},
    }
    request = register_request(metadata, b"onnx", b"", name=None, version=None)
    assert (request.model_name, request.version, request.registered_by) == ("m", "2.0.0", "")  # the caller is
    assert dict(request.metrics) == {"auc_roc": 0.9, "parity_rows": 10.0}
    assert dict(request.params) == {"n_estimators": "100"}
    assert dict(request.data_split) == {"train": "a/b", "test": "c/d"}
    assert request.reference_profile.rows == 5 and request.reference_profile.histograms[0].feature == "amount"
    with pytest.raises(ModelCliError, match="no thresholds"):
        register_request({**metadata, "thresholds": {}}, b"onnx", b"", name=None, version=None)
    with pytest.raises(ModelCliError, match="--name and --version"):
        register_request({"thresholds": metadata["thresholds"]}, b"onnx", b"", name=None, version=None)
