"""An HTML model card for model-risk review, rendered from a version's metadata alone (no data needed).

One self-contained file: metrics of ours vs the random-forest baseline vs the autoencoder, the test
precision-recall curves and the LightGBM feature importance (PNG, base64-embedded), the data and its split,
thresholds, parameters, and, when the registry supplies them, approvals and lineage.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HEADLINE = (
    ("auc_roc", "AUC ROC"),
    ("average_precision", "Average precision"),
    ("card_precision_at_100", "Card precision@100"),
)
MODELS = (
    ("metrics", "ours (LightGBM)"),
    ("baseline_metrics", "random forest (Handbook)"),
    ("anomaly_metrics", "autoencoder"),
)
REGISTRY_FIELDS = (
    ("stage", "stage"),
    ("role", "role"),
    ("registered_by", "registered by"),
    ("registered_at", "registered at"),
)
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.9em}
img{max-width:100%;border:1px solid #eee}.note{color:#555;font-size:.9em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{_num(c)}</td>' if isinstance(c, int | float) else f"<td>{_e(c)}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pr_plot(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> str:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend (Agg canvas)

    figure = Figure(figsize=(6, 4.2), dpi=100)
    ax = figure.add_subplot()
    for label, (precision, recall) in curves.items():
        ax.plot(recall, precision, label=label, linewidth=1.6 if label.startswith("ours") else 1.0)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (test set)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    figure.tight_layout()
    return _png(figure)


def _importance_plot(importance: Mapping[str, float]) -> str:
    from matplotlib.figure import Figure

    items = sorted(importance.items(), key=lambda kv: kv[1])
    total = sum(v for _, v in items) or 1.0
    figure = Figure(figsize=(6, 0.3 * len(items) + 1.2), dpi=100)
    ax = figure.add_subplot()
    ax.barh([k for k, _ in items], [v / total for _, v in items], color="#4a7bb7")
    ax.set(xlabel="share of total split gain", title="Feature importance (LightGBM gain)")
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _curve(data: Any) -> tuple[list[float], list[float]] | None:
    """(precision, recall) from a {"precision", "recall"} dict (metadata.json) or a (precision, recall) pair."""
    if isinstance(data, Mapping):
        data = (data.get("precision"), data.get("recall"))
    if isinstance(data, tuple | list) and len(data) == 2 and data[0] is not None and len(data[0]) > 0:
        return [float(x) for x in data[0]], [float(x) for x in data[1]]
    return None


def _lineage_rows(lineage: Mapping[str, Any]) -> str:
    rows = []
    for key, value in lineage.items():
        if isinstance(value, str | int | float):
            cell = _e(value)
        else:  # nested (event history, profiles): folded, so the card stays readable
            text = json.dumps(value, indent=1, sort_keys=True, default=str)
            size = f"{len(value)} item(s)" if isinstance(value, list | dict) else "value"
            cell = f"<details><summary>{size}</summary><pre>{_e(text)}</pre></details>"
        rows.append(f"<tr><td>{_e(key)}</td><td>{cell}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def render_model_card(
    metadata: dict[str, Any],
    out_html: Path,
    *,
    approvals: list[dict[str, Any]] | None = None,
    lineage: dict[str, Any] | None = None,
    pr_curve: tuple[Sequence[float], Sequence[float]] | Mapping[str, Sequence[float]] | None = None,
    feature_importance: dict[str, float] | None = None,
) -> Path:
    """Write the model card of `metadata` (a metadata.json document) to `out_html`.

    Args:
        metadata: The version's metadata (fraudml.artifacts.build_metadata, or the registry's copy).
        out_html: Where to write the HTML file.
        approvals: Sign-offs, e.g. [{"approver", "stage", "comment", "approved_at"}], shown as given.
        lineage: Anything else the registry knows (deployments, events); shown as key/value rows.
        pr_curve: (precision, recall) of our model, or {"precision", "recall"}; default metadata["pr_curve"].
        feature_importance: Gain per feature; default metadata["feature_importance"].

    Returns:
        `out_html`.
    """
    name, version = metadata.get("model_name", "model"), metadata.get("version", "")
    dirty = " (with uncommitted changes)" if metadata.get("code_dirty") else ""
    sections = [
        f"<h1>Model card: {_e(name)} {_e(version)}</h1>",
        _table(
            ["", ""],
            [
                ["created", metadata.get("created_at", "")],
                ["feature set", metadata.get("feature_set_version", "")],
                ["code revision", f"{metadata.get('code_revision', '')}{dirty}"],
                ["model sha256", metadata.get("model_sha256") or metadata.get("artifact_sha256", "")],
                *([[label, metadata[key]] for key, label in REGISTRY_FIELDS if metadata.get(key)]),
            ],
        ),
        "<h2>Metrics (test set)</h2>",
        _table(
            ["metric", *(label for _, label in MODELS)],
            [[title, *(metadata.get(key, {}).get(metric) for key, _ in MODELS)] for metric, title in HEADLINE],
        ),
        '<p class="note">Card precision@100: each test day, the share of the 100 highest-scored cards that had '
        "fraud that day, averaged over days (divided by 100 even when fewer cards were fraudulent).</p>",
    ]
    ours = _curve(pr_curve) if pr_curve is not None else _curve(metadata.get("pr_curve"))
    curves = {label: c for label, c in ((MODELS[0][1], ours),) if c is not None}
    for key, label in (("baseline_pr_curve", MODELS[1][1]), ("anomaly_pr_curve", MODELS[2][1])):
        if (other := _curve(metadata.get(key))) is not None:
            curves[label] = other
    sections.append("<h2>Precision-recall curve</h2>")
    sections.append(
        f'<img alt="precision-recall curve" src="data:image/png;base64,{_pr_plot(curves)}">'
        if ours is not None
        else "<p>No precision-recall curve was recorded.</p>"
    )
    importance = feature_importance if feature_importance is not None else metadata.get("feature_importance")
    sections.append("<h2>Feature importance</h2>")
    sections.append(
        f'<img alt="feature importance" src="data:image/png;base64,{_importance_plot(importance)}">'
        if importance
        else "<p>No feature importance was recorded.</p>"
    )
    dataset = metadata.get("dataset", {})
    sections += [
        "<h2>Data</h2>",
        _table(
            ["", ""],
            [
                ["dataset sha256 (content)", metadata.get("dataset_sha256", "")],
                *([["file", dataset["path"]]] if dataset.get("path") else []),
                *([["file sha256", dataset["file_sha256"]]] if dataset.get("file_sha256") else []),
                *([["rows", dataset["rows"]]] if "rows" in dataset else []),
            ],
        ),
        _table(
            ["period", "from / to (UTC, end exclusive)"],
            sorted((metadata.get("data_split") or metadata.get("split") or {}).items(), key=lambda kv: str(kv[1])),
        ),
        "<h2>Thresholds</h2>",
        _table(["action", "score at or above"], sorted(metadata.get("thresholds", {}).items())),
        '<p class="note">Set on the test set at precision targets, so optimistic: re-check on fresh data '
        "before promotion.</p>",
        "<h2>Other measurements</h2>",
        _table(["measure", "value"], sorted((k, v) for k, v in metadata.get("metrics", {}).items())),
        "<h2>Parameters</h2>",
        _table(["parameter", "value"], sorted((k, str(v)) for k, v in metadata.get("params", {}).items())),
    ]
    if approvals:
        keys = list(dict.fromkeys(k for a in approvals for k in a))
        sections += ["<h2>Approvals</h2>", _table(keys, [[a.get(k, "") for k in keys] for a in approvals])]
    if lineage:
        sections += ["<h2>Lineage</h2>", _lineage_rows(lineage)]
    document = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Model card: {_e(name)} {_e(version)}'
        f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(document, encoding="utf-8")
    return out_html
