"""Only governance manages models in the REAL tritonserver: a load without the admin key is refused.

Triton runs as the platform runs it (`locked_triton_server`): the model-repository and model-config APIs
need the admin key, on HTTP and gRPC alike. A stranger's inline-code load (a model.py sent in the request)
is refused and its code never runs, while the same load with the key does run it (so the check can see
code running); governance's deployer, reading the key file named by FRAUD_TRITON_ADMIN_KEY_FILE, still
deploys; scoring's inference, metadata and the health endpoints need no key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from fraudml.datagen import generate
from fraudml.train import TrainResult, train
from fraudshared.features import N_FEATURES
from fraudshared.triton_admin import ADMIN_KEY_FILE_ENV, ADMIN_KEY_HEADER, GRPC_ADMIN_KEY_HEADER
from services.governance.adapters.triton_deployer import TritonDeployer
from services.governance.adapters.triton_repository import TritonModelControl, write_model
from services.governance.domain.errors import DeploymentFailed
from services.scoring.adapters.triton_runner import TritonRunner
from tests.fixtures.triton import RunningTriton

pytestmark = pytest.mark.integration

INLINE_CONFIG = json.dumps(
    {
        "backend": "python",
        "max_batch_size": 0,
        "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [1]}],
        "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [1]}],
    }
)


def inline_model(marker: Path) -> bytes:
    """A model.py whose import writes `marker`: proof that Triton ran code sent in the request."""
    return (
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "import os, sys\n"  # the stub ignores PYTHONPATH (see model_template.py); numpy lives there
        "sys.path.extend(p for p in os.environ.get('PYTHONPATH', '').split(':') if p)\n"
        "import triton_python_backend_utils as pb\n"
        "class TritonPythonModel:\n"
        "    def execute(self, requests):\n"
        "        return [pb.InferenceResponse(output_tensors=[pb.Tensor('Y', pb.get_input_tensor_by_name(r, 'X')"
        ".as_numpy())]) for r in requests]\n"
    ).encode()


def http_post(url: str, body: Mapping[str, object], headers: dict[str, str] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def model() -> TrainResult:
    return train(generate(n_customers=200, n_terminals=2_000, n_days=30, seed=15), train_days=14)


def test_inline_code_load_over_http_is_refused_without_the_key(
    locked_triton_server: RunningTriton, tmp_path: Path
) -> None:
    triton, name = locked_triton_server, f"probe-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "ran"
    body = {"parameters": {"config": INLINE_CONFIG, "file:1/model.py": base64.b64encode(inline_model(marker)).decode()}}
    url = f"{triton.http_url}/v2/repository/models/{name}/load"
    for headers in (None, {ADMIN_KEY_HEADER: "x" * 64}):  # no key, a wrong key
        status, text = http_post(url, body, headers)
        assert (status, "restricted" in text) == (403, True)
        assert triton.admin_key is not None and triton.admin_key not in text
    assert not marker.exists()
    control = TritonModelControl(triton.grpc_url, admin_key=triton.admin_key)
    assert not control.is_ready(name)
    # Unloading, listing and reading a config are model management too.
    assert http_post(f"{triton.http_url}/v2/repository/models/{name}/unload", {})[0] == 403
    assert http_post(f"{triton.http_url}/v2/repository/index", {})[0] == 403
    assert http_status(f"{triton.http_url}/v2/models/{name}/config") == 403
    assert http_post(f"{triton.http_url}/v2/logging", {"log_verbose_level": 1})[0] == 403
    assert http_status(f"{triton.http_url}/v2/systemsharedmemory/status") == 403
    # The same load with the key runs the code: the refusal above is what kept it from running.
    assert triton.admin_key is not None
    status, text = http_post(url, body, {ADMIN_KEY_HEADER: triton.admin_key})
    assert status == 200, text
    assert marker.read_text() == "ran" and control.is_ready(name)
    control.unload(name)


def test_inline_code_load_over_grpc_is_refused_without_the_key(
    locked_triton_server: RunningTriton, tmp_path: Path
) -> None:
    triton, name = locked_triton_server, f"probe-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "ran"
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    files = {"file:1/model.py": inline_model(marker)}
    try:
        for headers in (None, {GRPC_ADMIN_KEY_HEADER: "x" * 64}, {ADMIN_KEY_HEADER: str(triton.admin_key)}):
            with pytest.raises(InferenceServerException, match="restricted") as refused:
                client.load_model(name, headers=headers, config=INLINE_CONFIG, files=files, client_timeout=60)
            assert str(triton.admin_key) not in str(refused.value)
        assert not marker.exists() and not client.is_model_ready(name)
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_model_repository_index()
    finally:
        client.close()


def test_governance_deploys_with_the_key_file_and_scoring_needs_no_key(
    locked_triton_server: RunningTriton, model: TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    triton, name = locked_triton_server, f"gbdt-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(ADMIN_KEY_FILE_ENV, str(triton.admin_key_file))
    deployer = TritonDeployer(triton.grpc_url, triton.repo_dir)
    try:
        asyncio.run(deployer.deploy(name, model.model_onnx_bytes, N_FEATURES))
        assert deployer.is_ready(name)
        # Nobody else can take the served model down.
        stranger = grpcclient.InferenceServerClient(triton.grpc_url)
        with pytest.raises(InferenceServerException, match="restricted"):
            stranger.unload_model(name)
        assert stranger.is_model_ready(name) and stranger.get_model_metadata(name).name == name
        stranger.close()

        # Scoring infers with no key; the health endpoints (watchdog, probes) answer with no key.
        async def score() -> float:
            runner = TritonRunner(triton.grpc_url)  # its aio channel belongs to this loop
            try:
                return await runner.score(name, [0.0] * N_FEATURES, timeout=10.0)
            finally:
                await runner.close()

        assert 0.0 <= asyncio.run(score()) <= 1.0
        assert http_status(f"{triton.http_url}/v2/health/live") == 200
        assert http_status(f"{triton.http_url}/v2/health/ready") == 200
    finally:
        asyncio.run(deployer.undeploy(name))
        deployer.close()
    assert not TritonModelControl(triton.grpc_url).is_ready(name)


def test_a_deployer_without_the_key_fails_the_deployment(
    locked_triton_server: RunningTriton, model: TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    triton, name = locked_triton_server, f"gbdt-{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv(ADMIN_KEY_FILE_ENV, raising=False)
    deployer = TritonDeployer(triton.grpc_url, triton.repo_dir)
    try:
        with pytest.raises(DeploymentFailed, match="admin key is missing or wrong"):
            asyncio.run(deployer.deploy(name, model.model_onnx_bytes, N_FEATURES))
        assert not deployer.is_ready(name)
    finally:
        asyncio.run(deployer.undeploy(name))
        deployer.close()


def test_the_key_never_reaches_the_log(locked_triton_server: RunningTriton, model: TrainResult) -> None:
    triton, name = locked_triton_server, f"gbdt-{uuid.uuid4().hex[:8]}"
    control = TritonModelControl(triton.grpc_url, admin_key=triton.admin_key)
    write_model(triton.repo_dir, name, 1, model.model_onnx_bytes, N_FEATURES)
    control.load(name)
    assert control.infer(name, np.zeros((3, N_FEATURES), dtype=np.float32)).shape == (3,)
    control.unload(name)
    assert str(triton.admin_key) not in triton.server.log_path.read_text(errors="replace")
