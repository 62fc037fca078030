"""The HTML model card renders from metadata alone: metrics of the three models, two plots, data, approvals."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from fraudml.model_card import render_model_card

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metadata() -> dict[str, Any]:
    return {
        "model_name": "card-fraud-gbdt",
        "version": "1.2.0",
        "created_at": "2026-11-26T10:00:00+00:00",
        "code_revision": "0123456789abcdef0123456789abcdef01234567",
        "feature_set_version": "card-v1",
        "model_sha256": "ab" * 32,
        "dataset_sha256": "cd" * 32,
        "dataset": {"path": "data/tx.parquet", "file_sha256": "ef" * 32, "rows": 27559},
        "metrics": {"auc_roc": 0.8181, "average_precision": 0.6404, "card_precision_at_100": 0.2029},
        "baseline_metrics": {"auc_roc": 0.8061, "average_precision": 0.6324, "card_precision_at_100": 0.1957},
        "anomaly_metrics": {"auc_roc": 0.7699, "average_precision": 0.4533, "card_precision_at_100": 0.1757},
        "thresholds": {"review": 0.0632, "decline": 0.2542},
        "data_split": {
            "train": "2026-01-01/2026-01-22",
            "delay": "2026-01-22/2026-01-29",
            "test": "2026-01-29/2026-02-05",
        },
        "params": {"n_estimators": 200, "learning_rate": 0.05},
        "pr_curve": {"precision": [0.05, 0.4, 1.0], "recall": [1.0, 0.6, 0.0]},
        "baseline_pr_curve": {"precision": [0.05, 0.35, 1.0], "recall": [1.0, 0.6, 0.0]},
        "feature_importance": {"amount": 11118.9, "amount_to_card_mean_30d": 10475.2, "is_weekend": 8.1},
    }


def images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([^"]+)"', html)]


def test_card_has_metrics_plots_data_and_approvals(tmp_path: Path) -> None:
    approvals = [
        {"approver": "risk-officer-ana", "comment": "ok <b>for</b> canary", "approved_at": "2026-11-26T11:00:00Z"},
        {"approver": "validator-ben", "comment": "", "approved_at": "2026-11-26T12:00:00Z"},
    ]
    lineage = {"registered_by": "ds-carla", "history": [{"event": "ModelRegistered"}, {"event": "ModelApproved"}]}
    out = render_model_card(metadata(), tmp_path / "cards" / "card.html", approvals=approvals, lineage=lineage)
    html = out.read_text(encoding="utf-8")
    assert out == tmp_path / "cards" / "card.html"
    for value in ("0.8181", "0.6324", "0.4533", "0.2029", "0.1957", "0.1757", "0.2542", "0.0632"):
        assert value in html
    for text in ("ours (LightGBM)", "random forest", "autoencoder", "cd" * 32, "ef" * 32, "2026-01-22/2026-01-29"):
        assert text in html
    pngs = images(html)
    assert len(pngs) == 2 and html.count("<img") == 2 and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert "risk-officer-ana" in html and "validator-ben" in html and "ds-carla" in html
    assert "&lt;b&gt;for&lt;/b&gt;" in html and "<b>for</b>" not in html  # everything shown is escaped
    assert "http" not in html.replace('lang="en"', "")  # self-contained: nothing fetched from anywhere


def test_card_takes_curve_and_importance_arguments_or_says_they_are_missing(tmp_path: Path) -> None:
    bare = {k: v for k, v in metadata().items() if k not in ("pr_curve", "baseline_pr_curve", "feature_importance")}
    html = render_model_card(bare, tmp_path / "bare.html").read_text(encoding="utf-8")
    assert "<img" not in html and "No precision-recall curve was recorded" in html
    assert "Approvals" not in html
    given = render_model_card(
        bare, tmp_path / "given.html", pr_curve=([0.1, 1.0], [1.0, 0.0]), feature_importance={"amount": 1.0}
    ).read_text(encoding="utf-8")
    assert len(images(given)) == 2
