"""Artifact store and registration-time artifact checks (pure filesystem / in-memory, no servers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.governance.adapters.artifact_checks import check_explainer, validate_artifacts
from services.governance.adapters.artifacts import ArtifactCorrupt, ArtifactNotFound, ArtifactStore
from services.governance.adapters.onnx_check import check_onnx
from services.governance.domain.errors import ArtifactDamaged, InvalidArtifact, UnknownArtifact

FEATURES = ("amount", "card_tx_count_1d", "terminal_risk_7d")


def test_artifact_store_is_content_addressed_and_detects_corruption(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(b"model")
    assert store.put(b"model") == sha and store.get(sha) == b"model"
    with pytest.raises(ArtifactNotFound):
        store.get("0" * 64)
    with pytest.raises(UnknownArtifact):  # the domain's NOT_FOUND
        store.get("0" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        store.path("../etc/passwd")
    path = store.path(sha)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupt, match="corrupt"):
        store.get(sha)
    assert issubclass(ArtifactCorrupt, ArtifactDamaged)


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


@pytest.fixture(scope="module")
def explainer_text() -> bytes:
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] > 0.5).astype(int)
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 4}, lightgbm.Dataset(x, y), 3)
    return str(booster.model_to_string()).encode()


def test_explainer_must_be_lightgbm_text_with_the_declared_feature_count(explainer_text: bytes) -> None:
    assert check_explainer(explainer_text, FEATURES).startswith("lightgbm booster, 3 features")
    with pytest.raises(InvalidArtifact, match="takes 3 features but 2"):
        check_explainer(explainer_text, FEATURES[:2])
    for garbage in (b"not a model", b"\xff\xfe"):
        with pytest.raises(InvalidArtifact, match="not a LightGBM model text"):
            check_explainer(garbage, FEATURES)


def test_validate_artifacts_reports_every_check(explainer_text: bytes) -> None:
    checks = validate_artifacts(tiny_onnx(), explainer_text, FEATURES)
    assert set(checks) == {"onnx_checker", "input_contract", "output_contract", "feature_count", "explainer"}
    assert checks["input_contract"] == "features float32 [batch, 3]"
    assert validate_artifacts(tiny_onnx(), b"", FEATURES)["explainer"] == "none uploaded"
