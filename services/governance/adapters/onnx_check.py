"""Validates an uploaded ONNX model before anything is stored or appended.

The serving contract (`triton_repository`, fraudml.onnx_export): one float32 input ``features`` of shape
``[batch, n]``, ``n`` = the number of declared feature names, and a float32 output ``probability``
``[batch, 1]``. The batch dimension may be dynamic or fixed; the feature dimension must be ``n`` or dynamic.
Anything else is refused here, with a message saying what is wrong, rather than failing later in Triton.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from google.protobuf.message import DecodeError

from services.governance.adapters.triton_repository import INPUT_NAME, OUTPUT_NAME
from services.governance.domain.errors import InvalidArtifact


@dataclass(frozen=True)
class OnnxSummary:
    """What governance needs to know about a valid model."""

    input_name: str
    n_features: int
    output_names: tuple[str, ...]
    opset: int


def check_onnx(data: bytes, feature_names: Sequence[str]) -> OnnxSummary:
    """Parses and checks an ONNX model against the declared feature names.

    Args:
        data: The ONNX file's bytes.
        feature_names: Ordered feature names the model is registered with.

    Returns:
        A summary of the model's interface.

    Raises:
        InvalidArtifact: If the bytes are not a valid ONNX model, or its input does not take
            ``len(feature_names)`` float features.
    """
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidArtifact(f"onnx_model is not a readable ONNX file: {exc}") from None
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise InvalidArtifact(f"onnx_model fails the ONNX checker: {_first_line(exc)}") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise InvalidArtifact(f"onnx_model must have exactly one input {INPUT_NAME!r}, has {[i.name for i in inputs]}")
    tensor = inputs[0].type.tensor_type
    if not inputs[0].type.HasField("tensor_type") or tensor.elem_type != onnx.TensorProto.FLOAT:
        elem = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else "not a tensor"
        raise InvalidArtifact(f"onnx_model input {inputs[0].name!r} must be float32, is {elem}")
    dims = tensor.shape.dim
    if len(dims) != 2:
        raise InvalidArtifact(
            f"onnx_model input {inputs[0].name!r} must be 2-D [batch, features], has {len(dims)} dims"
        )
    expected = len(feature_names)
    if dims[1].HasField("dim_value") and dims[1].dim_value != expected:
        raise InvalidArtifact(
            f"onnx_model input {inputs[0].name!r} takes {dims[1].dim_value} features but {expected} feature "
            "names were declared"
        )
    output = next((o for o in model.graph.output if o.name == OUTPUT_NAME), None)
    if output is None:
        raise InvalidArtifact(f"onnx_model has no output {OUTPUT_NAME!r}, has {[o.name for o in model.graph.output]}")
    if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise InvalidArtifact(f"onnx_model output {OUTPUT_NAME!r} must be float32")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxSummary(inputs[0].name, expected, tuple(o.name for o in model.graph.output), opset)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
