"""A trained model in the REAL tritonserver (python backend): load, infer over gRPC, unload, refuse bad files."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from fraudml.datagen import generate
from fraudml.onnx_export import onnx_session, predict_onnx
from fraudml.train import TrainResult, train
from fraudshared.config import ConfigError
from fraudshared.features import N_FEATURES, batch_features
from fraudshared.triton_admin import ADMIN_KEY_FILE_ENV, admin_key_from_env, read_admin_key_file, write_admin_key_file
from fraudshared.triton_server import TritonServer, command_line, environment, find_tritonserver
from services.governance.adapters.triton_repository import (
    ModelLoadError,
    TritonModelControl,
    config_text,
    remove_model,
    write_model,
)
from tests.fixtures.triton import RunningTriton

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model() -> TrainResult:
    return train(generate(n_customers=300, n_terminals=3_000, n_days=30, seed=5), train_days=14)


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    df = generate(n_customers=200, n_terminals=2_000, n_days=20, seed=6)
    df["card_token"] = "card-" + df["customer_id"].astype(str)
    return batch_features(df)[:3_000]


@pytest.fixture
def control(triton_server: RunningTriton) -> TritonModelControl:
    return TritonModelControl(triton_server.grpc_url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("backend", ["python", "onnxruntime_onnx"])
def test_config_is_a_valid_triton_model_config(backend: str) -> None:
    text = config_text("card-fraud-gbdt-1-0-0", N_FEATURES, {1: "ab" * 32, 2: "cd" * 32}, backend, 64)
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert config.name == "card-fraud-gbdt-1-0-0" and config.max_batch_size == 64
    assert (config.backend, config.platform) == (("python", "") if backend == "python" else ("", backend))
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("features", 11, [N_FEATURES])]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [("probability", 11, [1])]
    assert config.parameters["sha256_v2"].string_value == "cd" * 32
    assert config.HasField("dynamic_batching") and config.version_policy.HasField("all")


def test_layouts_for_both_backends(tmp_path: Path, model: TrainResult) -> None:
    python_dir = write_model(tmp_path, "py", 1, model.model_onnx_bytes, N_FEATURES)
    ort_dir = write_model(tmp_path, "ort", 1, model.model_onnx_bytes, N_FEATURES, backend="onnxruntime_onnx")
    assert sorted(p.relative_to(python_dir).as_posix() for p in python_dir.rglob("*")) == [
        "1",
        "1/model.onnx",
        "1/model.py",
        "config.pbtxt",
    ]
    assert sorted(p.relative_to(ort_dir).as_posix() for p in ort_dir.rglob("*")) == [
        "1",
        "1/model.onnx",
        "config.pbtxt",
    ]
    assert 'platform: "onnxruntime_onnx"' in (ort_dir / "config.pbtxt").read_text()
    assert (python_dir / "1" / "model.onnx").read_bytes() == model.model_onnx_bytes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_versions_are_added_never_overwritten(tmp_path: Path, model: TrainResult) -> None:
    write_model(tmp_path, "m", 1, model.model_onnx_bytes, N_FEATURES)
    write_model(tmp_path, "m", 1, model.model_onnx_bytes, N_FEATURES)  # same bytes: a no-op
    with pytest.raises(ValueError, match=r"different model\.onnx"):
        write_model(tmp_path, "m", 1, b"other", N_FEATURES)
    write_model(tmp_path, "m", 2, b"other", N_FEATURES)
    config = text_format.Parse((tmp_path / "m" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.parameters["sha256_v1"].string_value == model.sha256 and "sha256_v2" in config.parameters
    with pytest.raises(ValueError, match="unsafe"):
        write_model(tmp_path, "../escape", 1, b"x", N_FEATURES)
    remove_model(tmp_path, "m")
    remove_model(tmp_path, "m")
    assert list(tmp_path.iterdir()) == []


def test_served_scores_match_onnxruntime(
    triton_server: RunningTriton, control: TritonModelControl, model: TrainResult, features: np.ndarray
) -> None:
    name = unique("gbdt")
    write_model(triton_server.repo_dir, name, 1, model.model_onnx_bytes, N_FEATURES)
    control.load(name)
    assert control.is_ready(name)
    assert 0.0 <= control.warm(name) <= 1.0
    served = control.infer(name, features)  # 3,000 rows in max_batch_size chunks
    local = predict_onnx(onnx_session(model.model_onnx_bytes), features)
    assert served.shape == (len(features),) and served.dtype == np.float32
    assert float(np.max(np.abs(served - local))) < 1e-5
    control.unload(name)
    assert not control.is_ready(name)
    remove_model(triton_server.repo_dir, name)


def test_corrupt_onnx_is_refused_and_not_ready(triton_server: RunningTriton, control: TritonModelControl) -> None:
    name = unique("corrupt")
    write_model(triton_server.repo_dir, name, 1, b"definitely not an onnx graph", N_FEATURES)
    with pytest.raises(ModelLoadError, match=r"onnxruntime refused model\.onnx"):
        control.load(name)
    assert not control.is_ready(name)


def test_tampered_file_fails_the_sha256_check(
    triton_server: RunningTriton, control: TritonModelControl, model: TrainResult
) -> None:
    name = unique("tampered")
    model_dir = write_model(triton_server.repo_dir, name, 1, model.model_onnx_bytes, N_FEATURES)
    (model_dir / "1" / "model.onnx").write_bytes(model.model_onnx_bytes[:-10])
    with pytest.raises(ModelLoadError, match="sha256"):
        control.load(name)
    assert not control.is_ready(name)


def test_command_line_binds_loopback_only(tmp_path: Path) -> None:
    argv = command_line(tmp_path / "models", tmp_path / "backends", 9001, 9000, 9002)
    assert argv[0] == str(find_tritonserver().binary) and "--model-control-mode=explicit" in argv
    for flag in ("--grpc-address", "--http-address", "--metrics-address"):
        assert f"{flag}=127.0.0.1" in argv
    env = environment(base={})
    assert str(find_tritonserver().libs_dir) in env["LD_LIBRARY_PATH"] and "site-packages" in env["PYTHONPATH"]
    assert not [a for a in argv if "restricted" in a]  # no key: model management open (tests' shared server)


def test_command_line_with_an_admin_key_restricts_model_management(tmp_path: Path) -> None:
    key = "k" * 64
    argv = command_line(tmp_path / "models", tmp_path / "backends", 9001, 9000, 9002, admin_key=key)
    spec = f"model-repository,model-config,shared-memory,trace,logging:triton-admin-key={key}"
    assert [a for a in argv if "restricted" in a] == [
        f"--grpc-restricted-protocol={spec}",
        f"--http-restricted-api={spec}",
    ]
    for bad in ("short", "k" * 40 + ",health", "k" * 40 + "=x"):
        with pytest.raises(ValueError, match="admin key") as refused:
            command_line(tmp_path, tmp_path, 1, 2, 3, admin_key=bad)
        assert bad not in str(refused.value)


def test_admin_key_file_is_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "triton-admin-key"
    key = write_admin_key_file(path)
    assert len(key) == 64 and path.stat().st_mode & 0o777 == 0o600
    assert read_admin_key_file(path) == key == admin_key_from_env({ADMIN_KEY_FILE_ENV: str(path)})
    assert write_admin_key_file(path) != key  # a new key each time (the starter keeps the file it made)
    assert admin_key_from_env({}) is None
    with pytest.raises(ConfigError, match="cannot read"):
        admin_key_from_env({ADMIN_KEY_FILE_ENV: str(tmp_path / "missing")})
    (tmp_path / "bad").write_text("not a key, with spaces\n")
    with pytest.raises(ConfigError, match="does not hold a key") as refused:
        read_admin_key_file(tmp_path / "bad")
    assert "spaces" not in str(refused.value)


def test_stop_leaves_no_process_behind(tmp_path: Path, model: TrainResult) -> None:
    server = TritonServer(tmp_path / "models", tmp_path / "work")
    with server:
        write_model(server.model_repo, "m", 1, model.model_onnx_bytes, N_FEATURES)
        TritonModelControl(server.grpc_url).load("m")  # spawns a python backend stub process
        assert server._process is not None
        group = server._process.pid
        assert len(members(group)) >= 2
    assert members(group) == [] and not server.running
    server.stop()  # idempotent


def members(process_group: int) -> list[str]:
    done = subprocess.run(["pgrep", "-g", str(process_group)], capture_output=True, text=True, check=False)
    return done.stdout.split()
