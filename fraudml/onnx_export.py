"""LightGBM -> ONNX with the platform's I/O contract, and the native-vs-ONNX parity check.

Contract of every fraud model graph: one input "features" float32 [batch, n_features] in FEATURE_NAMES
order; one output "probability" float32 [batch, 1], the probability of fraud (class 1).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxmltools.convert.common.data_types import FloatTensorType

INPUT_NAME = "features"
OUTPUT_NAME = "probability"
PARITY_BOUND = 1e-5


def float32_exact_booster(booster: lgb.Booster) -> lgb.Booster:
    """The same trees with every numerical split threshold lowered to the largest float32 not above it.

    LightGBM compares in double, ONNX TreeEnsemble in float32, so a double threshold rounded to the nearest
    float32 can flip `x <= t` for an input equal to that float32. For float32 inputs x, `x <= t` holds
    exactly when `x <= floor32(t)`, so this booster predicts what the original does on float32 features, and
    its thresholds survive the float32 cast unchanged.
    """
    lines = booster.model_to_string().splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("threshold="):
            continue
        # In each tree block decision_type follows threshold; bit 0 of a decision type marks a categorical split.
        decision_line = next(x for x in lines[i + 1 :] if x.startswith("decision_type="))
        numerical = (np.array(decision_line.split("=", 1)[1].split(), dtype=np.int64) & 1) == 0
        thresholds = np.array(line.split("=", 1)[1].split(), dtype=np.float64)
        lowered = thresholds.astype(np.float32)
        above = lowered.astype(np.float64) > thresholds
        lowered[above] = np.nextafter(lowered[above], np.float32(-np.inf))
        thresholds[numerical] = lowered[numerical]
        lines[i] = "threshold=" + " ".join(repr(float(v)) for v in thresholds)
    # tree_sizes gives each tree block's byte length, which the rewrite changes; without it LightGBM scans.
    return lgb.Booster(model_str="\n".join(x for x in lines if not x.startswith("tree_sizes=")) + "\n")


def to_onnx(model: lgb.LGBMClassifier, n_features: int) -> bytes:
    """Serialize a fitted binary classifier as an ONNX graph with the "features" -> "probability" contract.

    onnxmltools emits "label" [N] and "probabilities" [N, 2]; we gather column 1 into "probability" [N, 1]
    (Gather works at every opset) and drop "label" from the graph outputs.
    """
    converted = onnxmltools.convert_lightgbm(
        float32_exact_booster(model.booster_),
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        zipmap=False,
    )
    graph = converted.graph
    probabilities = next(o.name for o in graph.output if o.name != "label")
    graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), name="fraud_class_index"))
    graph.node.append(
        helper.make_node("Gather", [probabilities, "fraud_class_index"], [OUTPUT_NAME], axis=1, name="select_fraud")
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    graph.name = "fraud_gbt"
    onnx.checker.check_model(converted, full_check=True)
    return bytes(converted.SerializeToString())


def onnx_session(model_bytes: bytes, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session over a serialized model (one intra-op thread: the hot path is one row)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def predict_onnx(session: ort.InferenceSession, features: np.ndarray) -> np.ndarray:
    """Fraud probabilities [N] (float32) from an ONNX session."""
    matrix = np.ascontiguousarray(features, dtype=np.float32)
    (probability,) = session.run([OUTPUT_NAME], {INPUT_NAME: matrix})
    return np.asarray(probability, dtype=np.float32).reshape(-1)


def parity_max_abs_diff(model: lgb.LGBMClassifier, model_bytes: bytes, features: np.ndarray) -> float:
    """Largest |native LightGBM probability - onnxruntime probability| over the rows of `features`."""
    matrix = np.ascontiguousarray(features, dtype=np.float32)
    native = model.booster_.predict(matrix)  # the booster itself: no sklearn feature-name check on arrays
    onnx_scores = predict_onnx(onnx_session(model_bytes), matrix)
    return float(np.max(np.abs(native - onnx_scores.astype(np.float64)))) if len(matrix) else 0.0
