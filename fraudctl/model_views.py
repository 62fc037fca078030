"""How ``fraudctl model`` shows the registry's answers: a version's summary table, lines, times."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table

from fraud.governance.v1 import governance_service_pb2 as pb
from fraudctl.model_messages import ModelCliError, format_when, role_name, stage_name


def summary_table(model: pb.ModelVersion, title: str) -> Table:
    """A version's lineage, metrics, params, split and checks as a two-column table."""
    table = Table(title=title, show_header=False, title_justify="left")
    role = role_name(model.role) + (f" {model.canary_percent}%" if model.canary_percent else "")
    rows = [
        ("model", f"{model.model_name} {model.version}"),
        ("stage", stage_name(model.stage) + (f" ({role})" if role else "")),
        ("artifact sha256", model.artifact_sha256),
        ("explainer sha256", model.explainer_artifact_sha256 or "-"),
        ("dataset sha256", model.dataset_sha256),
        ("feature set", f"{model.feature_set_version} ({len(model.feature_names)} features)"),
        ("code revision", model.code_revision or "-"),
        ("thresholds", f"review {model.thresholds.review:g} / decline {model.thresholds.decline:g}"),
        ("registered", f"{format_when(model.registered_at)} by {model.registered_by}"),
        ("approvers", ", ".join(model.approvers) or "-"),
        ("triton", model.triton_model_name or "-"),
    ]
    rows += [(f"metric {k}", f"{v:.4f}") for k, v in sorted(model.metrics.items())]
    rows += [(f"param {k}", v) for k, v in sorted(model.params.items())]
    rows += [(f"split {k}", v) for k, v in sorted(model.data_split.items())]
    rows += [(f"check {k}", v) for k, v in sorted(model.validation_checks.items())]
    for key, value in rows:
        table.add_row(key, escape(value))
    return table


def registry_line(found: pb.GetDecisionModelResponse) -> str:
    """What the registry says now about the version that decided a transaction."""
    if not found.HasField("model"):
        return "not in this registry" if found.model_ref.name else "-"
    match = "artifact matches" if found.artifact_matches else "ARTIFACT DIFFERS from the registry's"
    return f"{stage_name(found.model.stage)} now; {match}"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset allowed; none = UTC), or ``now``."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ModelCliError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-25T12:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
