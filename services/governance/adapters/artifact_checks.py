"""Registration-time checks of the uploaded artifacts: the ONNX serving contract and the LightGBM explainer.

`validate_artifacts` implements the `ArtifactValidator` port: it returns ``check name -> detail`` for the
`ModelValidated` event, or raises `InvalidArtifact` naming the first check that failed (then nothing is stored
or appended).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.governance.adapters.onnx_check import check_onnx
from services.governance.domain.errors import InvalidArtifact


def check_explainer(text: bytes, feature_names: Sequence[str]) -> str:
    """Parses a LightGBM model text and checks it takes the declared features; returns a one-line summary.

    Raises:
        InvalidArtifact: If the text is not a LightGBM model, or its feature count differs.
    """
    import lightgbm  # heavy import, only needed when an explainer is uploaded

    try:
        booster = lightgbm.Booster(model_str=text.decode("utf-8"))
    except (UnicodeDecodeError, lightgbm.basic.LightGBMError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArtifact(f"explainer_model is not a LightGBM model text: {first}") from None
    n_features = booster.num_feature()
    if n_features != len(feature_names):
        raise InvalidArtifact(
            f"explainer_model takes {n_features} features but {len(feature_names)} feature names were declared"
        )
    return f"lightgbm booster, {n_features} features, {booster.num_trees()} trees"


def validate_artifacts(onnx_model: bytes, explainer_model: bytes, feature_names: Sequence[str]) -> dict[str, str]:
    """Runs every artifact check; returns their details for `ModelValidated`.

    Raises:
        InvalidArtifact: Naming the first check that failed.
    """
    summary = check_onnx(onnx_model, feature_names)
    checks = {
        "onnx_checker": f"passed (opset {summary.opset})",
        "input_contract": f"{summary.input_name} float32 [batch, {summary.n_features}]",
        "output_contract": "probability float32 in " + ", ".join(summary.output_names),
        "feature_count": f"{summary.n_features} inputs == {len(feature_names)} feature names",
        "explainer": "none uploaded",
    }
    if explainer_model:
        checks["explainer"] = check_explainer(explainer_model, feature_names)
    return checks
