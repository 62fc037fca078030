"""An autoencoder anomaly model: how badly a small network reconstructs a transaction's features.

After the Handbook's ch. 7 autoencoder, kept light: a scikit-learn MLPRegressor (12 -> 32 -> 4 -> 32 -> 12,
tanh) learns to reproduce the standardized features of GENUINE training transactions only; its anomaly score
is the mean squared reconstruction error in standardized units. It needs no labels, so it can flag patterns
the supervised model has never seen. Exported with skl2onnx: input "features" float32 [N, n_features] (the
same as the fraud model), output "anomaly_score" float32 [N, 1] (>= 0, unbounded; not a probability).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fraudml.onnx_export import INPUT_NAME, onnx_session

OUTPUT_NAME = "anomaly_score"
TARGET_OPSET = {"": 15, "ai.onnx.ml": 1}  # what both Triton images' onnxruntime builds run
ANOMALY_PARAMS: dict[str, Any] = {
    "hidden_layer_sizes": (32, 4, 32),
    "activation": "tanh",
    "max_iter": 50,  # a fixed epoch budget: bounded training time; not running to convergence is deliberate
    "batch_size": 256,
    "learning_rate_init": 1e-3,
}
MAX_TRAIN_ROWS = 50_000


@dataclass(frozen=True)
class Autoencoder:
    """The fitted scaler + network."""

    pipeline: Pipeline

    def score(self, features: np.ndarray) -> np.ndarray:
        """Anomaly scores [N] (float64, scikit-learn's own arithmetic)."""
        scaler, network = self.pipeline.named_steps["scale"], self.pipeline.named_steps["autoencoder"]
        z = scaler.transform(np.asarray(features, dtype=np.float32))
        return np.mean((network.predict(z) - z) ** 2, axis=1)


def train_autoencoder(genuine: np.ndarray, seed: int = 0) -> Autoencoder:
    """Fit on genuine transactions' features (at most MAX_TRAIN_ROWS, a seeded sample beyond that)."""
    rows = np.asarray(genuine, dtype=np.float32)
    if len(rows) > MAX_TRAIN_ROWS:
        rows = rows[np.sort(np.random.default_rng(seed).choice(len(rows), MAX_TRAIN_ROWS, replace=False))]
    scaler = StandardScaler().fit(rows)
    z = scaler.transform(rows)
    network = MLPRegressor(**ANOMALY_PARAMS, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network.fit(z, z)
    return Autoencoder(Pipeline([("scale", scaler), ("autoencoder", network)]))


def to_onnx(model: Autoencoder, n_features: int) -> bytes:
    """ONNX graph "features" -> "anomaly_score": skl2onnx's pipeline, plus the mean squared error nodes."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    converted = convert_sklearn(
        model.pipeline, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))], target_opset=TARGET_OPSET
    )
    graph = converted.graph
    standardized = next(node.output[0] for node in graph.node if node.op_type == "Scaler")
    reconstruction = graph.output[0].name
    producer = next(node for node in graph.node if reconstruction in node.output)
    if producer.op_type == "Reshape":  # the converter flattens a multi-output regressor to [N * n_features]
        reconstruction = producer.input[0]
    graph.node.extend(
        [
            helper.make_node("Sub", [reconstruction, standardized], ["reconstruction_diff"], name="diff"),
            helper.make_node("Mul", ["reconstruction_diff", "reconstruction_diff"], ["squared_diff"], name="square"),
            helper.make_node("ReduceMean", ["squared_diff"], [OUTPUT_NAME], axes=[1], keepdims=1, name="mse"),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1]))
    graph.name = "fraud_autoencoder"
    onnx.checker.check_model(converted, full_check=True)
    return bytes(converted.SerializeToString())


def predict_onnx(model_bytes: bytes, features: np.ndarray) -> np.ndarray:
    """Anomaly scores [N] (float32) from the ONNX graph."""
    session = onnx_session(model_bytes)
    (scores,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)})
    return np.asarray(scores, dtype=np.float32).reshape(-1)


def parity(model: Autoencoder, model_bytes: bytes, features: np.ndarray) -> dict[str, float]:
    """scikit-learn (float64) vs onnxruntime (float32) scores: max absolute and max relative difference.

    The score is a sum of squares that reaches the hundreds on outliers, so float32 arithmetic differs from
    float64 by about 1e-7 of the score: the relative difference is the meaningful bound.
    """
    native = model.score(features)
    exported = predict_onnx(model_bytes, features).astype(np.float64)
    diff = np.abs(native - exported)
    return {
        "parity_max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "parity_max_rel_diff": float((diff / np.maximum(np.abs(native), 1.0)).max()) if len(diff) else 0.0,
        "parity_rows": float(len(features)),
    }
