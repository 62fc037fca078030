"""Triton Python-backend model: runs <version>/model.onnx with onnxruntime (copied verbatim as model.py).

Runs inside Triton's python backend stub, not in our services: it imports nothing from the project. The
stub embeds the system libpython and ignores PYTHONPATH for sys.path, so the first statement appends the
PYTHONPATH entries (the platform's venv site-packages, set by fraudshared.triton_server.environment()).
Before loading, the file's sha256 must equal the config parameter "sha256_v<version>": a model file that
was altered or half-copied is refused instead of served.
"""

import os
import sys

sys.path.extend(p for p in os.environ.get("PYTHONPATH", "").split(":") if p and p not in sys.path)

import hashlib
import json

import numpy as np
import onnxruntime as ort

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (tests, linters): only the stub provides this module
    pb_utils = None

INPUT_NAME = "features"
OUTPUT_NAME = "probability"


class TritonPythonModel:
    """One onnxruntime session per model instance, one intra-op thread (the server owns parallelism)."""

    def initialize(self, args):
        """Verify the ONNX file against the configured sha256 and open the session."""
        config = json.loads(args["model_config"])
        version = args["model_version"]
        path = os.path.join(args["model_repository"], version, "model.onnx")
        with open(path, "rb") as handle:
            model_bytes = handle.read()
        parameters = config.get("parameters", {})
        expected = parameters.get(f"sha256_v{version}", {}).get("string_value", "")
        actual = hashlib.sha256(model_bytes).hexdigest()
        if actual != expected:
            raise pb_utils.TritonModelException(
                f"{config['name']} v{version}: model.onnx sha256 {actual} does not match the configured "
                f"sha256_v{version} {expected or '(missing)'}; refusing to load"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", {}).get("string_value", "1"))
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
            raise pb_utils.TritonModelException(
                f"{config['name']} v{version}: onnxruntime refused model.onnx: {exc}"
            ) from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise pb_utils.TritonModelException(
                f"{config['name']} v{version}: graph has inputs {inputs} and outputs {outputs}; "
                f"expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}"
            )

    def execute(self, requests):
        """Run the requests the dynamic batcher grouped as one onnxruntime call, then split the result."""
        try:
            matrices = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
            stacked = np.ascontiguousarray(np.concatenate(matrices), dtype=np.float32)
            (scores,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: stacked})
            scores = np.asarray(scores, dtype=np.float32).reshape(-1, 1)
        except Exception as exc:  # answer every request with the error rather than crash the stub
            error = pb_utils.TritonError(f"inference failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for matrix in matrices:
            rows = scores[start : start + len(matrix)]
            start += len(matrix)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, rows)]))
        return responses

    def finalize(self):
        """Release the session."""
        self.session = None
